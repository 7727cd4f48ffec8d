package authz

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Role says whether a certificate belongs to a Dislog server or to a client.
//
// The role is read from the certificate's extended key usage, the field TLS
// itself enforces, never from a name: a certificate is a server certificate
// when every certificate in its verified chain permits TLS server
// authentication (the "server auth" usage, the "any" usage, or no extended key
// usage at all, which X.509 reads as "any"). Dislog issues server and peer
// certificates with server auth + client auth, and client certificates with
// client auth only, so a client certificate can neither act as a TLS server
// nor be read as one here. The organizational unit ("server" or "client")
// that dislog-certs writes is a label for people and is not trusted.
type Role uint8

const (
	// RoleClient is an application that produces or consumes.
	RoleClient Role = iota + 1
	// RoleServer is a Dislog server: it may replicate and may act as a TLS
	// server to other servers.
	RoleServer
)

// String returns "client" or "server".
func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// rolePrefix marks a policy subject that names a role instead of a
// certificate: "role:server" matches every server certificate. Certificate
// names may not start with it, so no common name can pose as a role.
const rolePrefix = "role:"

// Subject is the verified caller of a request.
type Subject struct {
	// Name is the common name of the verified certificate.
	Name string
	// Role is read from the certificate's extended key usage.
	Role Role
}

// SubjectFromState returns the subject of a connection from its verified peer
// certificate. On a server the state must come from a handshake with
// [ServerTLSConfig], which verifies client certificates; on a client, from
// [ClientTLSConfig] or [PeerTLSConfig]. A state with no verified chain (a
// plaintext connection, or a TLS configuration that skips verification) gives
// [ErrNoCertificate].
func SubjectFromState(state tls.ConnectionState) (Subject, error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return Subject{}, ErrNoCertificate
	}
	chain := state.VerifiedChains[0]
	name := chain[0].Subject.CommonName
	if err := checkName(name); err != nil {
		return Subject{}, err
	}
	return Subject{Name: name, Role: chainRole(chain)}, nil
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: certificate has no common name", ErrInvalidSubject)
	}
	if strings.HasPrefix(name, rolePrefix) {
		return fmt.Errorf("%w: common name %q uses the reserved prefix %q", ErrInvalidSubject, name, rolePrefix)
	}
	return nil
}

// chainRole is RoleServer when every certificate of chain, leaf first,
// permits server authentication, with the same rule crypto/x509 applies
// when a TLS client verifies a server.
func chainRole(chain []*x509.Certificate) Role {
	for _, c := range chain {
		if !permitsServerAuth(c) {
			return RoleClient
		}
	}
	return RoleServer
}

func permitsServerAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) ||
		slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}
