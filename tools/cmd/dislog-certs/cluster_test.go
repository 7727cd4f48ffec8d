package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/authz"
	"github.com/matryer/is"
)

func readCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: not PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestClusterMakesEverythingOnceAndKeepsItWhenRunAgain(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	args := []string{"cluster", "--dir", "pki", "--servers", "dislog-1,dislog-2", "--hosts", "localhost,127.0.0.1", "--clients", "admin,alice", "--policy"}
	out, err := run(t, dir, args...)
	is.NoErr(err)
	is.Equal(strings.Count(out, "made "), 6) // the CA, two servers, two clients, the policy

	pki := filepath.Join(dir, "pki")
	files := func(name string) authz.TLSOptions {
		return authz.TLSOptions{
			CAFile:     filepath.Join(pki, name, "ca.pem"),
			CertFile:   filepath.Join(pki, name, name+".pem"),
			KeyFile:    filepath.Join(pki, name, name+"-key.pem"),
			ServerName: "dislog-2",
		}
	}
	for _, s := range []string{"dislog-1", "dislog-2"} {
		_, err := authz.ServerTLSConfig(files(s))
		is.NoErr(err) // a server certificate
		cert := readCertificate(t, files(s).CertFile)
		is.Equal(cert.Subject.CommonName, s)
		for _, h := range []string{s, "localhost", "127.0.0.1"} {
			is.NoErr(cert.VerifyHostname(h)) // the names a server is dialed by
		}
	}
	for _, c := range []string{"admin", "alice"} {
		_, err := authz.ClientTLSConfig(files(c))
		is.NoErr(err) // a client certificate
		is.Equal(readCertificate(t, files(c).CertFile).Subject.CommonName, c)
	}
	policy, err := os.ReadFile(filepath.Join(pki, "policy.csv"))
	is.NoErr(err)
	is.True(strings.Contains(string(policy), "p, alice, *, *\n"))
	is.True(strings.Contains(string(policy), "p, role:server, *, replicate\n"))

	// A cluster brought up again keeps its CA and certificates, byte for byte.
	before, err := os.ReadFile(files("dislog-1").CertFile)
	is.NoErr(err)
	caBefore, err := os.ReadFile(filepath.Join(pki, "ca", "ca.pem"))
	is.NoErr(err)
	out, err = run(t, dir, args...)
	is.NoErr(err)
	is.Equal(strings.Count(out, "made "), 0)
	is.Equal(strings.Count(out, "kept "), 5)
	after, err := os.ReadFile(files("dislog-1").CertFile)
	is.NoErr(err)
	is.Equal(string(after), string(before))
	caAfter, err := os.ReadFile(filepath.Join(pki, "ca", "ca.pem"))
	is.NoErr(err)
	is.Equal(string(caAfter), string(caBefore))

	// A new host name is a reason to issue the servers' certificates again, with the same CA.
	out, err = run(t, dir, "cluster", "--dir", "pki", "--servers", "dislog-1,dislog-2", "--hosts", "dislog.example", "--clients", "admin,alice")
	is.NoErr(err)
	is.True(strings.Contains(out, "not valid for dislog.example, issuing it again"))
	is.Equal(strings.Count(out, "made "), 2)
	is.NoErr(readCertificate(t, files("dislog-1").CertFile).VerifyHostname("dislog.example"))
	caAgain, err := os.ReadFile(filepath.Join(pki, "ca", "ca.pem"))
	is.NoErr(err)
	is.Equal(string(caAgain), string(caBefore))
}

func TestClusterTakesTheCFSSLFilesGiven(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	cfssl := filepath.Join(dir, "cfssl")
	is.NoErr(os.MkdirAll(cfssl, 0o755))
	is.NoErr(os.WriteFile(filepath.Join(cfssl, "csr.json"), []byte(`{"key": {"algo": "rsa", "size": 2048}, "names": [{"O": "Example"}]}`), 0o644))
	_, err := run(t, dir, "cluster", "--dir", "pki", "--cfssl", "cfssl", "--servers", "dislog-1,dislog-2")
	is.NoErr(err)
	for _, name := range []string{"dislog-1", "dislog-2", "admin"} {
		cert := readCertificate(t, filepath.Join(dir, "pki", name, name+".pem"))
		_, isRSA := cert.PublicKey.(*rsa.PublicKey)
		is.True(isRSA)                                           // the key the CSR file asks for
		is.Equal(cert.Subject.Organization, []string{"Example"}) // its names
		is.Equal(cert.Subject.CommonName, name)                  // and each certificate's own name
	}
	is.NoErr(readCertificate(t, filepath.Join(dir, "pki", "dislog-2", "dislog-2.pem")).VerifyHostname("dislog-2"))
	is.True(readCertificate(t, filepath.Join(dir, "pki", "dislog-2", "dislog-2.pem")).VerifyHostname("dislog-1") != nil)
}
