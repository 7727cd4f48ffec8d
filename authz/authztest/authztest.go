// Package authztest makes certificate authorities and certificates for
// tests, with package devca, and writes them where authz's TLS
// configurations read them.
//
// Certificates follow the role encoding authz reads (see authz.Role): a
// server certificate has the server auth and client auth usages, a client
// certificate client auth only.
package authztest

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/devca"
)

// CA is a self-signed certificate authority: a [devca.CA] that fails the test instead of
// returning errors.
type CA struct {
	Cert *x509.Certificate
	ca   *devca.CA
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca, err := devca.New(cn)
	if err != nil {
		t.Fatalf("authztest: %v", err)
	}
	return &CA{Cert: ca.Certificate(), ca: ca}
}

// PEM returns the CA certificate in PEM.
func (ca *CA) PEM() []byte { return ca.ca.CertPEM() }

// Cert describes a certificate to issue.
type Cert struct {
	CommonName string
	Role       authz.Role
	// Hosts become DNS or IP subject alternative names. Default 127.0.0.1
	// and localhost.
	Hosts []string
	// NotBefore and NotAfter default to an hour ago and a day from now.
	NotBefore, NotAfter time.Time
}

// Issue signs c and returns its certificate and key in PEM.
func (ca *CA) Issue(t testing.TB, c Cert) (certPEM, keyPEM []byte) {
	t.Helper()
	if c.Hosts == nil {
		c.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = time.Now().Add(-time.Hour)
	}
	if c.NotAfter.IsZero() {
		c.NotAfter = time.Now().Add(24 * time.Hour)
	}
	certPEM, keyPEM, err := ca.ca.Issue(devca.Request{
		CommonName: c.CommonName, Role: c.Role, Hosts: c.Hosts, NotBefore: c.NotBefore, NotAfter: c.NotAfter,
	})
	if err != nil {
		t.Fatalf("authztest: issue %q: %v", c.CommonName, err)
	}
	return certPEM, keyPEM
}

// WriteFiles issues c and writes dir/<name>.pem, dir/<name>-key.pem and the
// CA as dir/ca.pem, each by renaming a finished file into place, and returns
// the options that name them.
func (ca *CA) WriteFiles(t testing.TB, dir, name string, c Cert) authz.TLSOptions {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, c)
	opts := authz.TLSOptions{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
	WriteFile(t, opts.CAFile, ca.PEM())
	WriteFile(t, opts.KeyFile, keyPEM)
	WriteFile(t, opts.CertFile, certPEM)
	return opts
}

// WriteFile replaces path with data by writing a temporary file and
// renaming it, the way certificates should be rotated.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatalf("authztest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("authztest: %v", err)
	}
}
