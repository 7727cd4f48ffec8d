package devca_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/devca"
	"github.com/matryer/is"
)

// writeFiles writes a certificate, its key and the CA into dir, as a server in dev mode does.
func writeFiles(t *testing.T, ca *devca.CA, name string, certPEM, keyPEM []byte) authz.TLSOptions {
	t.Helper()
	dir := t.TempDir()
	opts := authz.TLSOptions{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
	for path, data := range map[string][]byte{opts.CAFile: ca.CertPEM(), opts.CertFile: certPEM, opts.KeyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func issue(t *testing.T, ca *devca.CA, req devca.Request) authz.TLSOptions {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	return writeFiles(t, ca, req.CommonName, certPEM, keyPEM)
}

// handshake connects a client configuration to a server one over a pipe and returns the subject
// the server reads, or the first error of either side.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (authz.Subject, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, serverConf)
	errc := make(chan error, 1)
	go func() { errc <- tls.Client(b, clientConf).Handshake() }()
	if err := srv.Handshake(); err != nil {
		b.Close()
		<-errc
		return authz.Subject{}, err
	}
	if err := <-errc; err != nil {
		return authz.Subject{}, err
	}
	return authz.SubjectFromState(srv.ConnectionState())
}

// The certificates of a dev CA are used as Dislog uses them: a server certificate accepts clients
// and dials a peer (read as a server); a client certificate is read as a client with its name.
func TestCertificatesWorkInAuthzTLSConfigurationsWithTheirRoles(t *testing.T) {
	is := is.New(t)
	ca, err := devca.New(devca.CAName)
	is.NoErr(err)
	node1 := issue(t, ca, devca.Request{CommonName: "node1", Role: authz.RoleServer, Hosts: []string{"localhost", "127.0.0.1"}})
	node2 := issue(t, ca, devca.Request{CommonName: "node2", Role: authz.RoleServer, Hosts: []string{"localhost"}})
	dev := issue(t, ca, devca.Request{CommonName: "dev", Role: authz.RoleClient})

	serverConf, err := authz.ServerTLSConfig(node1)
	is.NoErr(err)
	clientConf, err := authz.ClientTLSConfig(dev)
	is.NoErr(err)
	clientConf.ServerName = "127.0.0.1"
	sub, err := handshake(t, serverConf, clientConf)
	is.NoErr(err)
	is.Equal(sub, authz.Subject{Name: "dev", Role: authz.RoleClient})

	peerConf, err := authz.PeerTLSConfig(node2)
	is.NoErr(err)
	peerConf.ServerName = "localhost"
	sub, err = handshake(t, serverConf, peerConf)
	is.NoErr(err)
	is.Equal(sub, authz.Subject{Name: "node2", Role: authz.RoleServer})

	_, err = authz.ServerTLSConfig(dev)
	is.True(errors.Is(err, authz.ErrWrongRole)) // a client certificate cannot serve
}

func TestAServerCertificateNamesItsHostsAndTheCAValidatesIt(t *testing.T) {
	is := is.New(t)
	ca, err := devca.New(devca.CAName)
	is.NoErr(err)
	certPEM, _, err := ca.Issue(devca.Request{CommonName: "node1", Role: authz.RoleServer, Hosts: []string{"node1.local", "127.0.0.9"}})
	is.NoErr(err)
	pool := x509.NewCertPool()
	is.True(pool.AppendCertsFromPEM(ca.CertPEM()))
	cert := parse(t, certPEM)
	for _, host := range []string{"node1.local", "127.0.0.9"} {
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
		is.NoErr(err)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
	is.True(err != nil) // a host it was not issued for
	is.Equal(cert.Subject.OrganizationalUnit, []string{"server"})
	is.True(cert.NotBefore.Before(time.Now()))
	is.True(cert.NotAfter.After(time.Now().Add(devca.CertValidity - 2*devca.Backdate)))
}

func TestAParsedCAIssuesCertificatesTheFirstOneTrusts(t *testing.T) {
	is := is.New(t)
	ca, err := devca.New(devca.CAName)
	is.NoErr(err)
	keyPEM, err := ca.KeyPEM()
	is.NoErr(err)
	again, err := devca.Parse(ca.CertPEM(), keyPEM)
	is.NoErr(err)
	is.Equal(again.CertPEM(), ca.CertPEM())
	certPEM, _, err := again.Issue(devca.Request{CommonName: "dev", Role: authz.RoleClient})
	is.NoErr(err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	_, err = parse(t, certPEM).Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	is.NoErr(err)
}

func TestParseRefusesWhatIsNotACA(t *testing.T) {
	ca, err := devca.New(devca.CAName)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	leaf, leafKey, err := ca.Issue(devca.Request{CommonName: "dev", Role: authz.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cert, key []byte
	}{
		{"a leaf certificate", leaf, leafKey},
		{"a CA with another key", ca.CertPEM(), leafKey},
		{"garbage", []byte("not PEM"), caKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := devca.Parse(tc.cert, tc.key)
			if !errors.Is(err, devca.ErrInvalidCA) {
				t.Fatalf("got %v, want ErrInvalidCA", err)
			}
		})
	}
}

func TestIssueRefusesRequestsThatCannotMakeAUsableCertificate(t *testing.T) {
	ca, err := devca.New(devca.CAName)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  devca.Request
	}{
		{"no common name", devca.Request{Role: authz.RoleClient}},
		{"a name that poses as a role", devca.Request{CommonName: "role:server", Role: authz.RoleClient}},
		{"no role", devca.Request{CommonName: "x"}},
		{"a server with no host", devca.Request{CommonName: "node1", Role: authz.RoleServer}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ca.Issue(tc.req); !errors.Is(err, devca.ErrInvalidRequest) {
				t.Fatalf("got %v, want ErrInvalidRequest", err)
			}
		})
	}
}

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
