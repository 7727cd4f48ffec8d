// Package acl authenticates and authorizes every gRPC call: the caller is the subject of its verified
// client certificate (authz.SubjectFromState), and each LogService method needs an action (produce,
// consume, admin) on the topic its request names. For streams, every message received is checked,
// since each ProduceStream request may name another topic.
package acl

import (
	"context"
	"errors"
	"strings"

	"github.com/dislog/dislog/authz"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Authorizer decides whether a subject may do an action on an object; *authz.Authorizer is one.
type Authorizer interface {
	Authorize(sub authz.Subject, object string, act authz.Action) error
}

// rule is what a method needs: one of actions on the topic of each request, or, with no actions,
// only an authenticated caller; with server, a server certificate.
type rule struct {
	actions []authz.Action
	server  bool
}

var (
	produce  = rule{actions: []authz.Action{authz.ActionProduce}}
	consume  = rule{actions: []authz.Action{authz.ActionConsume}}
	admin    = rule{actions: []authz.Action{authz.ActionAdmin}}
	describe = rule{actions: []authz.Action{authz.ActionConsume, authz.ActionProduce, authz.ActionAdmin}}
	anyone   = rule{}
	servers  = rule{server: true}
)

// Rules maps every LogService method to what it needs. A LogService method missing here is denied
// to everyone, so a new method is closed until it is given a rule.
var rules = map[string]rule{
	dislogv1.LogService_Produce_FullMethodName:       produce,
	dislogv1.LogService_ProduceStream_FullMethodName: produce,
	dislogv1.LogService_Consume_FullMethodName:       consume,
	dislogv1.LogService_ConsumeStream_FullMethodName: consume,
	dislogv1.LogService_CommitOffset_FullMethodName:  consume,
	dislogv1.LogService_FetchOffset_FullMethodName:   consume,
	dislogv1.LogService_CreateTopic_FullMethodName:   admin,
	dislogv1.LogService_DeleteTopic_FullMethodName:   admin,
	dislogv1.LogService_DescribeTopic_FullMethodName: describe,
	// ListTopics lists only the topics the caller may describe (Visible).
	dislogv1.LogService_ListTopics_FullMethodName: anyone,
	dislogv1.LogService_GetServers_FullMethodName: anyone,
}

var (
	servicePrefix = "/" + dislogv1.LogService_ServiceDesc.ServiceName + "/"
	peerPrefix    = "/" + peerv1.Peer_ServiceDesc.ServiceName + "/"
)

// ruleFor returns a method's rule. The peer service (forwarded writes, record copies) is for
// servers only; methods of other services (health, reflection) need only an authenticated caller.
func ruleFor(method string) (rule, bool) {
	if strings.HasPrefix(method, peerPrefix) {
		return servers, true
	}
	if !strings.HasPrefix(method, servicePrefix) {
		return anyone, true
	}
	r, ok := rules[method]
	return r, ok
}

// ACL holds the interceptors.
type ACL struct {
	authz  Authorizer
	denied func(remote, subject, method, action string, err error)
}

// New returns the interceptors for a. denied, if not nil, is told of every call denied with
// PermissionDenied: the caller's address and subject, the method, the action it needed
// ("produce", "consume", "admin", "server" for the peer service, "none" for a method without a
// rule) and the error the caller gets.
func New(a Authorizer, denied func(remote, subject, method, action string, err error)) *ACL {
	return &ACL{authz: a, denied: denied}
}

// deny tells of a PermissionDenied error err, and returns it.
func (a *ACL) deny(ctx context.Context, sub authz.Subject, method string, r *rule, err error) error {
	if a.denied == nil || status.Code(err) != codes.PermissionDenied {
		return err
	}
	action := "none"
	switch {
	case r == nil:
	case r.server:
		action = "server"
	case len(r.actions) > 0:
		action = string(r.actions[0])
	}
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	a.denied(remote, sub.Name, method, action, err)
	return err
}

type subjectKey struct{}

// SubjectFrom returns the caller's subject, which the interceptors put in the call's context.
func SubjectFrom(ctx context.Context) (authz.Subject, bool) {
	sub, ok := ctx.Value(subjectKey{}).(authz.Subject)
	return sub, ok
}

// subject reads the caller's subject from its TLS state.
func subject(ctx context.Context) (authz.Subject, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return authz.Subject{}, status.Error(codes.Unauthenticated, "no peer: connect with TLS and a client certificate")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return authz.Subject{}, status.Error(codes.Unauthenticated, "connection is not TLS: connect with TLS and a client certificate from the cluster's CA")
	}
	sub, err := authz.SubjectFromState(info.State)
	if err != nil {
		return authz.Subject{}, status.Errorf(codes.Unauthenticated, "no usable client certificate: %v", err)
	}
	return sub, nil
}

// topicOf is a request that names a topic; every LogService request that needs an action does.
type topicOf interface{ GetTopic() string }

// check authorizes one request under r.
func (a *ACL) check(sub authz.Subject, method string, r rule, req any) error {
	if r.server && sub.Role != authz.RoleServer {
		return status.Errorf(codes.PermissionDenied, "%s is for servers only; %q has a %s certificate", method, sub.Name, sub.Role)
	}
	if len(r.actions) == 0 {
		return nil
	}
	tr, ok := req.(topicOf)
	if !ok {
		return status.Errorf(codes.Internal, "%s: request names no topic to authorize", method)
	}
	topic := tr.GetTopic()
	var err error
	for _, act := range r.actions {
		if err = a.authz.Authorize(sub, topic, act); err == nil {
			return nil
		}
	}
	if errors.Is(err, authz.ErrPermissionDenied) {
		return status.Errorf(codes.PermissionDenied, "%v; an operator can allow it with a policy rule like \"p, %s, %s, %s\"",
			err, sub.Name, topic, r.actions[0])
	}
	return status.Errorf(codes.Internal, "authorize: %v", err)
}

// Visible reports whether the caller of ctx may describe topic, for ListTopics.
func (a *ACL) Visible(ctx context.Context, topic string) bool {
	sub, ok := SubjectFrom(ctx)
	return ok && a.check(sub, "", describe, &dislogv1.DescribeTopicRequest{Topic: topic}) == nil
}

// Unary is the interceptor of unary calls.
func (a *ACL) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	sub, err := subject(ctx)
	if err != nil {
		return nil, err
	}
	r, ok := ruleFor(info.FullMethod)
	if !ok {
		return nil, a.deny(ctx, sub, info.FullMethod, nil, status.Errorf(codes.PermissionDenied, "%s has no ACL rule", info.FullMethod))
	}
	if err := a.check(sub, info.FullMethod, r, req); err != nil {
		return nil, a.deny(ctx, sub, info.FullMethod, &r, err)
	}
	return handler(context.WithValue(ctx, subjectKey{}, sub), req)
}

// Stream is the interceptor of streaming calls: it checks every message the handler receives.
func (a *ACL) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	sub, err := subject(ss.Context())
	if err != nil {
		return err
	}
	r, ok := ruleFor(info.FullMethod)
	if !ok {
		return a.deny(ss.Context(), sub, info.FullMethod, nil, status.Errorf(codes.PermissionDenied, "%s has no ACL rule", info.FullMethod))
	}
	if r.server && sub.Role != authz.RoleServer {
		return a.deny(ss.Context(), sub, info.FullMethod, &r, a.check(sub, info.FullMethod, r, nil))
	}
	return handler(srv, &checkedStream{
		ServerStream: ss, acl: a, sub: sub, method: info.FullMethod, rule: r,
		ctx: context.WithValue(ss.Context(), subjectKey{}, sub),
	})
}

type checkedStream struct {
	grpc.ServerStream
	acl    *ACL
	sub    authz.Subject
	method string
	rule   rule
	ctx    context.Context
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := s.acl.check(s.sub, s.method, s.rule, m); err != nil {
		return s.acl.deny(s.ctx, s.sub, s.method, &s.rule, err)
	}
	return nil
}
