package certs

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/storelog"
)

// File names in a CA directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// CA is a certificate authority on disk.
type CA struct {
	// CertFile and KeyFile are the CA's PEM files.
	CertFile, KeyFile string

	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// NewCA makes a CA from req (DefaultCACSR when nil) and writes it into dir,
// which it creates. It fails with ErrCAExists rather than overwrite a CA key.
func NewCA(dir string, req *csr.CertificateRequest) (*CA, error) {
	if req == nil {
		req = DefaultCACSR()
	}
	keyFile := filepath.Join(dir, CAKeyFile)
	if _, err := os.Stat(keyFile); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrCAExists, keyFile)
	}
	certPEM, _, keyPEM, err := initca.New(req)
	if err != nil {
		return nil, fmt.Errorf("certs: make CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	// The key first: a directory with a CA certificate but no key is one
	// NewCA would not refuse, and one OpenCA cannot use.
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return OpenCA(dir)
}

// OpenCA reads the CA in dir. It fails with ErrNoCA if there is none.
func OpenCA(dir string) (*CA, error) {
	ca := &CA{CertFile: filepath.Join(dir, CACertFile), KeyFile: filepath.Join(dir, CAKeyFile)}
	certPEM, err := os.ReadFile(ca.CertFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoCA, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: read CA: %w", err)
	}
	keyPEM, err := os.ReadFile(ca.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA key: %w", err)
	}
	if ca.cert, err = helpers.ParseCertificatePEM(certPEM); err != nil {
		return nil, fmt.Errorf("certs: parse %s: %w", ca.CertFile, err)
	}
	if ca.key, err = helpers.ParsePrivateKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("certs: parse %s: %w", ca.KeyFile, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("certs: %s and %s are not a pair: %w", ca.CertFile, ca.KeyFile, err)
	}
	if !ca.cert.IsCA {
		return nil, fmt.Errorf("certs: %s is not a CA certificate", ca.CertFile)
	}
	ca.certPEM = certPEM
	return ca, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// IssueRequest asks for one certificate.
type IssueRequest struct {
	// Role decides the signing profile and is checked against the
	// certificate signed. Required.
	Role Role
	// CommonName is the subject authz reads. Required unless CSR has one;
	// it replaces CSR's when both are set.
	CommonName string
	// Hosts become the subject alternative names (DNS names or IP
	// addresses) a server is dialed by; a server or peer needs at least one.
	// They replace CSR's hosts when set.
	Hosts []string
	// CSR is a cfssl request (key algorithm, names). Default DefaultCSR.
	CSR *csr.CertificateRequest
	// Signing is the cfssl signing policy. Default DefaultSigning.
	Signing *config.Signing
	// Profile is the signing profile. Default the role's name. The policy
	// must have it: cfssl would otherwise fall back to its default profile.
	Profile string
	// Name is the base of the file names. Default the common name.
	Name string
}

// Files are the PEM files of an issued certificate, in authz's terms.
type Files = authz.TLSOptions

// Issue signs a certificate for req and writes it into dir, which it
// creates, as <name>.pem and <name>-key.pem with a copy of the CA as ca.pem.
// Files already there are replaced, which is how a certificate is rotated.
func (ca *CA) Issue(dir string, req IssueRequest) (Files, error) {
	creq, profile, name, err := req.resolve()
	if err != nil {
		return Files{}, err
	}
	signing := req.Signing
	if signing == nil {
		signing = DefaultSigning()
	}
	if _, ok := signing.Profiles[profile]; !ok {
		return Files{}, fmt.Errorf("%w: the signing config has no profile %q", ErrInvalidRequest, profile)
	}
	g := &csr.Generator{Validator: func(*csr.CertificateRequest) error { return nil }}
	csrPEM, keyPEM, err := g.ProcessRequest(creq)
	if err != nil {
		return Files{}, fmt.Errorf("certs: make key and CSR: %w", err)
	}
	s, err := local.NewSigner(ca.key, ca.cert, signer.DefaultSigAlgo(ca.key), signing)
	if err != nil {
		return Files{}, fmt.Errorf("certs: signer: %w", err)
	}
	certPEM, err := s.Sign(signer.SignRequest{Hosts: creq.Hosts, Request: string(csrPEM), Profile: profile})
	if err != nil {
		return Files{}, fmt.Errorf("certs: sign: %w", err)
	}
	if err := checkRole(certPEM, req.Role, profile); err != nil {
		return Files{}, err
	}

	files := Files{
		CAFile:   filepath.Join(dir, CACertFile),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("certs: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{
		{files.KeyFile, keyPEM, 0o600},
		{files.CertFile, certPEM, 0o644},
		{files.CAFile, ca.certPEM, 0o644},
	} {
		if err := writeFile(f.path, f.data, f.perm); err != nil {
			return Files{}, err
		}
	}
	return files, nil
}

// resolve fills in the request's defaults and checks it, and returns the
// cfssl request, the profile and the file name.
func (req IssueRequest) resolve() (creq *csr.CertificateRequest, profile, name string, err error) {
	if !req.Role.valid() {
		return nil, "", "", fmt.Errorf("%w: unknown role %q (want server, peer or client)", ErrInvalidRequest, req.Role)
	}
	if req.CSR != nil {
		c := *req.CSR
		creq = &c
	} else {
		creq = DefaultCSR()
	}
	if req.CommonName != "" {
		creq.CN = req.CommonName
	}
	if req.Hosts != nil {
		creq.Hosts = req.Hosts
	}
	// The organizational unit labels the role for people; a name that
	// does not set one gets it.
	creq.Names = slices.Clone(creq.Names)
	if len(creq.Names) == 0 {
		creq.Names = []csr.Name{{O: "Dislog"}}
	}
	for i := range creq.Names {
		if creq.Names[i].OU == "" {
			creq.Names[i].OU = req.Role.unit()
		}
	}
	if creq.KeyRequest == nil {
		creq.KeyRequest = csr.NewKeyRequest()
	}
	name = req.Name
	if name == "" {
		name = creq.CN
	}
	switch {
	case creq.CN == "":
		return nil, "", "", fmt.Errorf("%w: no common name", ErrInvalidRequest)
	case strings.HasPrefix(creq.CN, "role:"):
		return nil, "", "", fmt.Errorf("%w: common name %q uses the prefix authz reserves for roles", ErrInvalidRequest, creq.CN)
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return nil, "", "", fmt.Errorf("%w: %q cannot name a file: set a file name", ErrInvalidRequest, name)
	case name == "ca":
		return nil, "", "", fmt.Errorf("%w: the file name %q would overwrite the CA", ErrInvalidRequest, name)
	case req.Role.isServer() && len(creq.Hosts) == 0:
		return nil, "", "", fmt.Errorf("%w: a %s certificate needs at least one host to be dialed by", ErrInvalidRequest, req.Role)
	}
	profile = req.Profile
	if profile == "" {
		profile = string(req.Role)
	}
	return creq, profile, name, nil
}

// checkRole reads the signed certificate's role the way authz will, and
// refuses one that does not match the role asked for.
func checkRole(certPEM []byte, role Role, profile string) error {
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return fmt.Errorf("certs: parse signed certificate: %w", err)
	}
	sub, err := authz.SubjectFromState(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}})
	if err != nil {
		return fmt.Errorf("certs: signed certificate: %w", err)
	}
	clientAuth := len(cert.ExtKeyUsage) == 0 ||
		slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) ||
		slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny)
	want := authz.RoleClient
	if role.isServer() {
		want = authz.RoleServer
	}
	if sub.Role != want || !clientAuth {
		return fmt.Errorf("%w: profile %q made a %s certificate that authz reads as a %s (client auth: %t); a %s needs %s",
			ErrRoleMismatch, profile, role, sub.Role, clientAuth, role, usagesFor(role))
	}
	return nil
}

func usagesFor(r Role) string {
	if r.isServer() {
		return `"server auth" and "client auth"`
	}
	return `"client auth" without "server auth" or "any"`
}

// writeFile replaces path with data with storelog.WriteFileAtomic, so readers see the old file or
// the new one, and a crash leaves one of them.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := storelog.WriteFileAtomic(storelog.OSFS(), path, data, perm); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}
