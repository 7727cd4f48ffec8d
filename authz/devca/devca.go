// Package devca is a small certificate authority for development and tests, written with the
// standard library's crypto/x509 alone: it makes a CA and issues server and client certificates
// that authz reads the way it reads certificates from dislog-certs.
//
// A Dislog server in development mode uses it to make its own CA on first start, so the server
// does not carry a full PKI toolkit (dislog-certs, in the tools module, uses cfssl for real PKIs).
// It returns PEM bytes and writes nothing: the caller decides where and how files are written.
//
//	ca, err := devca.New(devca.CAName)
//	certPEM, keyPEM, err := ca.Issue(devca.Request{CommonName: "node1", Role: authz.RoleServer, Hosts: []string{"127.0.0.1"}})
//
// # Certificates
//
// Keys are ECDSA P-256. The CA is valid for five years, certificates for one, both from an hour
// before they are made (clocks drift). The role is written in the extended key usage, which authz
// reads (see authz.Role): a server certificate has server auth and client auth, so a server uses it
// both to accept connections and to dial its peers; a client certificate has client auth only. The
// subject is the common name, with organization Dislog and the role as organizational unit, a label
// for people, as dislog-certs writes it.
package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/dislog/dislog/authz"
)

// CAName is the common name of a development CA.
const CAName = "Dislog development CA"

// Validity of what New and Issue make, counted from Backdate before now.
const (
	CAValidity   = 5 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
	// Backdate is how long before now a certificate starts being valid, so a peer whose clock is a
	// little behind accepts it.
	Backdate = time.Hour
)

// ErrInvalidRequest is returned by [CA.Issue] for a request that cannot make a usable certificate.
var ErrInvalidRequest = errors.New("devca: invalid request")

// ErrInvalidCA is returned by [Parse] when the PEM is not a CA certificate and its key.
var ErrInvalidCA = errors.New("devca: not a CA certificate and key")

// CA is a certificate authority held in memory.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// New makes a CA named commonName with a new key.
func New(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devca: generate key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Dislog"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(-Backdate + CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("devca: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	return &CA{cert: cert, certPEM: encode("CERTIFICATE", der), key: key}, nil
}

// Parse reads a CA from its certificate and key in PEM, as [CA.CertPEM] and [CA.KeyPEM] give them
// (or dislog-certs writes them).
func Parse(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("%w: %q is not a CA certificate", ErrInvalidCA, pair.Leaf.Subject.CommonName)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: the key cannot sign", ErrInvalidCA)
	}
	block, _ := pem.Decode(certPEM)
	return &CA{cert: pair.Leaf, certPEM: encode("CERTIFICATE", block.Bytes), key: key}, nil
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate in PEM: the trust bundle of servers and clients.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// KeyPEM returns the CA key in PEM (PKCS #8). Keep it private.
func (ca *CA) KeyPEM() ([]byte, error) { return marshalKey(ca.key) }

// Request asks for one certificate.
type Request struct {
	// CommonName is the subject authz reads. Required; it may not start with "role:", which authz
	// reserves.
	CommonName string
	// Role is authz.RoleServer or authz.RoleClient. Required.
	Role authz.Role
	// Hosts are the DNS names and IP addresses a server is dialed by (subject alternative names).
	// A server needs at least one.
	Hosts []string
	// NotBefore and NotAfter default to Backdate before now and CertValidity after that.
	NotBefore, NotAfter time.Time
}

// Issue signs a new key for req and returns the certificate and the key in PEM.
func (ca *CA) Issue(req Request) (certPEM, keyPEM []byte, err error) {
	switch {
	case req.CommonName == "":
		return nil, nil, fmt.Errorf("%w: no common name", ErrInvalidRequest)
	case strings.HasPrefix(req.CommonName, "role:"):
		return nil, nil, fmt.Errorf("%w: common name %q uses the prefix authz reserves for roles", ErrInvalidRequest, req.CommonName)
	case req.Role != authz.RoleServer && req.Role != authz.RoleClient:
		return nil, nil, fmt.Errorf("%w: unknown role %v", ErrInvalidRequest, req.Role)
	case req.Role == authz.RoleServer && len(req.Hosts) == 0:
		return nil, nil, fmt.Errorf("%w: a server certificate needs at least one host to be dialed by", ErrInvalidRequest)
	}
	if req.NotBefore.IsZero() {
		req.NotBefore = time.Now().Add(-Backdate)
	}
	if req.NotAfter.IsZero() {
		req.NotAfter = req.NotBefore.Add(CertValidity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: generate key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject: pkix.Name{
			CommonName:         req.CommonName,
			Organization:       []string{"Dislog"},
			OrganizationalUnit: []string{req.Role.String()},
		},
		NotBefore:   req.NotBefore,
		NotAfter:    req.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Role == authz.RoleServer {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: sign %q: %w", req.CommonName, err)
	}
	kp, err := marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encode("CERTIFICATE", der), kp, nil
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("devca: marshal key: %w", err)
	}
	return encode("PRIVATE KEY", der), nil
}

func encode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serial returns a random 127-bit serial number, as RFC 5280 asks: positive, at most 20 bytes, and
// unpredictable.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devca: serial number: %w", err)
	}
	return n, nil
}
