package authz_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/dislog/dislog/authz"
	"github.com/matryer/is"
)

func TestSubjectRoleComesFromExtendedKeyUsage(t *testing.T) {
	cert := func(cn string, eku ...x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"server"}}, ExtKeyUsage: eku}
	}
	ca := cert("CA")
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		want  authz.Role
	}{
		{"server and client auth is a server", []*x509.Certificate{cert("n1", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth), ca}, authz.RoleServer},
		{"client auth alone is a client, whatever its OU says", []*x509.Certificate{cert("a", x509.ExtKeyUsageClientAuth), ca}, authz.RoleClient},
		{"no extended key usage may serve, so is a server", []*x509.Certificate{cert("n1"), ca}, authz.RoleServer},
		{"the any usage may serve, so is a server", []*x509.Certificate{cert("n1", x509.ExtKeyUsageAny), ca}, authz.RoleServer},
		{"an intermediate limited to client auth makes a client",
			[]*x509.Certificate{cert("n1", x509.ExtKeyUsageServerAuth), cert("sub CA", x509.ExtKeyUsageClientAuth), ca}, authz.RoleClient},
		{"only unknown usages is a client",
			[]*x509.Certificate{{Subject: pkix.Name{CommonName: "x"}, UnknownExtKeyUsage: []asn1.ObjectIdentifier{{1, 2, 3}}}, ca}, authz.RoleClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			sub, err := authz.SubjectFromState(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{tc.chain}})
			is.NoErr(err)
			is.Equal(sub.Name, tc.chain[0].Subject.CommonName)
			is.Equal(sub.Role, tc.want)
		})
	}
}

func TestSubjectFromStateNeedsAVerifiedNamedCertificate(t *testing.T) {
	named := func(cn string) tls.ConnectionState {
		return tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	unverified := tls.ConnectionState{PeerCertificates: named("alice").VerifiedChains[0]}
	for _, tc := range []struct {
		name  string
		state tls.ConnectionState
		want  error
	}{
		{"a plaintext or unverified connection", unverified, authz.ErrNoCertificate},
		{"an empty chain", tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, authz.ErrNoCertificate},
		{"no common name", named(""), authz.ErrInvalidSubject},
		{"a common name posing as a role", named("role:server"), authz.ErrInvalidSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := authz.SubjectFromState(tc.state)
			is.True(errors.Is(err, tc.want))
		})
	}
}

func TestRoleNames(t *testing.T) {
	is := is.New(t)
	is.Equal(authz.RoleServer.String(), "server")
	is.Equal(authz.RoleClient.String(), "client")
	is.Equal(authz.Role(0).String(), "Role(0)")
}
