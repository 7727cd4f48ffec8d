package acl

import (
	"testing"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/matryer/is"
)

func TestEveryLogServiceMethodHasARule(t *testing.T) {
	is := is.New(t)
	desc := dislogv1.LogService_ServiceDesc
	var methods []string
	for _, m := range desc.Methods {
		methods = append(methods, m.MethodName)
	}
	for _, s := range desc.Streams {
		methods = append(methods, s.StreamName)
	}
	for _, m := range methods {
		_, ok := ruleFor("/" + desc.ServiceName + "/" + m)
		is.True(ok) // a method without a rule is denied to everyone
	}
	is.Equal(len(methods), len(rules))
	_, ok := ruleFor("/" + desc.ServiceName + "/NotAMethod")
	is.True(!ok)
	r, ok := ruleFor("/grpc.health.v1.Health/Check")
	is.True(ok)
	is.Equal(len(r.actions), 0) // other services need only a certificate
}
