package dislogv1_test

import (
	"fmt"
	"testing"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/matryer/is"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestOnlyTheNotLeaderAnswerIsRecognisedAsOne(t *testing.T) {
	is := is.New(t)
	is.True(dislogv1.IsNotLeader(dislogv1.NotLeaderError("node2 does not lead")))
	is.True(dislogv1.IsNotLeader(fmt.Errorf("forwarding: %w", dislogv1.NotLeaderError("x")))) // wrapped
	// The message is for people: the same words without the detail are some other refusal.
	is.True(!dislogv1.IsNotLeader(status.Error(codes.FailedPrecondition, "not the leader")))
	is.True(!dislogv1.IsNotLeader(status.Error(codes.FailedPrecondition, "out of sequence: producer 7 sent sequence 9, want 4")))
	is.True(!dislogv1.IsNotLeader(status.Error(codes.Unavailable, "not the leader")))
	is.True(!dislogv1.IsNotLeader(nil))
}
