package dislogv1

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors a Dislog server answers may carry a google.rpc.ErrorInfo detail in this domain, whose
// reason a client can act on without reading the message.
const ErrorDomain = "dislog.v1"

// ReasonNotLeader is the ErrorInfo reason of a FAILED_PRECONDITION from a server that does not
// lead and so wrote nothing: the request may be sent to the leader.
const ReasonNotLeader = "NOT_LEADER"

// NotLeaderError is the answer of a server that does not lead, with message for people.
func NotLeaderError(message string) error {
	st, err := status.New(codes.FailedPrecondition, message).
		WithDetails(&errdetails.ErrorInfo{Reason: ReasonNotLeader, Domain: ErrorDomain})
	if err != nil {
		panic(err) // an ErrorInfo always marshals
	}
	return st.Err()
}

// IsNotLeader reports whether err is NotLeaderError's answer.
func IsNotLeader(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain && info.Reason == ReasonNotLeader {
			return true
		}
	}
	return false
}
