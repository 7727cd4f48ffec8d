package certs

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
)

// Role is what a certificate is for. Server and peer certificates are the
// same kind (authz.RoleServer); peer is kept as its own profile because
// cfssl users expect one.
type Role string

// The roles, which are also the names of their signing profiles.
const (
	RoleServer Role = "server"
	RolePeer   Role = "peer"
	RoleClient Role = "client"
)

// Default expiries, in cfssl's duration strings.
const (
	DefaultCAExpiry   = "43800h" // five years
	DefaultCertExpiry = "8760h"  // one year
)

// isServer reports whether r is a role authz reads as a server.
func (r Role) isServer() bool { return r == RoleServer || r == RolePeer }

func (r Role) valid() bool { return r.isServer() || r == RoleClient }

// unit is the organizational unit written for r.
func (r Role) unit() string {
	if r.isServer() {
		return "server"
	}
	return "client"
}

// DefaultCACSR is the request for a CA when none is given: "Dislog CA",
// ECDSA P-256, valid for DefaultCAExpiry.
func DefaultCACSR() *csr.CertificateRequest {
	return &csr.CertificateRequest{
		CN:         "Dislog CA",
		Hosts:      []string{},
		Names:      []csr.Name{{O: "Dislog"}},
		KeyRequest: csr.NewKeyRequest(),
		CA:         &csr.CAConfig{Expiry: DefaultCAExpiry},
	}
}

// DefaultCSR is the request for a certificate when none is given: ECDSA
// P-256, organization Dislog. [CA.Issue] fills in the common name, the hosts
// and an organizational unit from the role.
func DefaultCSR() *csr.CertificateRequest {
	return &csr.CertificateRequest{
		Hosts:      []string{},
		Names:      []csr.Name{{O: "Dislog"}},
		KeyRequest: csr.NewKeyRequest(),
	}
}

// signingFile is the part of cfssl's ca-config.json that dislog-certs
// writes. cfssl's own config types carry run-time fields that do not
// marshal back into the file format.
type signingFile struct {
	Signing struct {
		Default  profileFile            `json:"default"`
		Profiles map[string]profileFile `json:"profiles"`
	} `json:"signing"`
}

type profileFile struct {
	Usages []string `json:"usages"`
	Expiry string   `json:"expiry"`
}

// DefaultSigningJSON is the cfssl ca-config.json used when none is given:
// profiles server, peer and client, each valid for DefaultCertExpiry. The
// default profile is a client one, so a request for a profile the file
// lacks can never come out as a server certificate.
func DefaultSigningJSON() []byte {
	server := profileFile{Usages: []string{"digital signature", "server auth", "client auth"}, Expiry: DefaultCertExpiry}
	client := profileFile{Usages: []string{"digital signature", "client auth"}, Expiry: DefaultCertExpiry}
	var f signingFile
	f.Signing.Default = client
	f.Signing.Profiles = map[string]profileFile{
		string(RoleServer): server,
		string(RolePeer):   server,
		string(RoleClient): client,
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(err) // a fixed struct of strings always marshals
	}
	return append(b, '\n')
}

// DefaultSigning is DefaultSigningJSON as cfssl's signing policy.
func DefaultSigning() *config.Signing {
	cfg, err := config.LoadConfig(DefaultSigningJSON())
	if err != nil {
		panic(err) // DefaultSigningJSON is a constant the tests load
	}
	return cfg.Signing
}

// LoadSigning reads the signing policy from a cfssl ca-config.json.
func LoadSigning(path string) (*config.Signing, error) {
	cfg, err := config.LoadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: load signing config %s: %w", path, err)
	}
	return cfg.Signing, nil
}

// LoadCSR reads a cfssl CSR JSON file, such as ca-csr.json. A request with no
// key section gets the default ECDSA P-256 key, as cfssl gives it.
func LoadCSR(path string) (*csr.CertificateRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: read CSR: %w", err)
	}
	req := csr.New()
	if err := json.Unmarshal(data, req); err != nil {
		return nil, fmt.Errorf("certs: parse CSR %s: %w", path, err)
	}
	return req, nil
}

// MarshalCSR renders req as a cfssl CSR JSON file.
func MarshalCSR(req *csr.CertificateRequest) ([]byte, error) {
	b, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("certs: marshal CSR: %w", err)
	}
	return append(b, '\n'), nil
}
