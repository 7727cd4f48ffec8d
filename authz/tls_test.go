package authz_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/authztest"
	"github.com/matryer/is"
)

// echoServer accepts TLS connections on 127.0.0.1 and answers each line with
// the caller's subject, "<name> <role>".
func echoServer(t *testing.T, conf *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSubject(tls.Server(c, conf))
		}
	}()
	return ln.Addr().String()
}

func serveSubject(c *tls.Conn) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return
	}
	sub, err := authz.SubjectFromState(c.ConnectionState())
	if err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s\n", sub.Name, sub.Role)
	}
}

// conn is one client connection to an echoServer.
type conn struct {
	c *tls.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string, conf *tls.Config) *conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := raw.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, conf)
	return &conn{c: c, r: bufio.NewReader(c)}
}

// call writes a line and reads the answer. In TLS 1.3 a client learns that
// the server refused its certificate only on its first read, so every
// rejection is asserted through a call, never through the dial.
func (c *conn) call() (string, error) {
	if _, err := c.c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func (c *conn) serverSerial() string {
	return c.c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pki is one test deployment: a CA, a server's and a client's files.
type pki struct {
	ca             *authztest.CA
	dir            string
	server, client authz.TLSOptions
}

func newPKI(t *testing.T) pki {
	t.Helper()
	ca := authztest.NewCA(t, "dislog test CA")
	dir := t.TempDir()
	return pki{
		ca:     ca,
		dir:    dir,
		server: ca.WriteFiles(t, dir, "node1", authztest.Cert{CommonName: "node1", Role: authz.RoleServer}),
		client: ca.WriteFiles(t, dir, "alice", authztest.Cert{CommonName: "alice", Role: authz.RoleClient}),
	}
}

func serverConfig(t *testing.T, o authz.TLSOptions) *tls.Config {
	t.Helper()
	conf, err := authz.ServerTLSConfig(o)
	if err != nil {
		t.Fatalf("ServerTLSConfig: %v", err)
	}
	return conf
}

func clientConfig(t *testing.T, o authz.TLSOptions, serverName string) *tls.Config {
	t.Helper()
	o.ServerName = serverName
	conf, err := authz.ClientTLSConfig(o)
	if err != nil {
		t.Fatalf("ClientTLSConfig: %v", err)
	}
	return conf
}

func TestServerKnowsAVerifiedClientAndItsRole(t *testing.T) {
	is := is.New(t)
	p := newPKI(t)
	addr := echoServer(t, serverConfig(t, p.server))

	got, err := dial(t, addr, clientConfig(t, p.client, "127.0.0.1")).call()
	is.NoErr(err)
	is.Equal(got, "alice client")

	p.server.ServerName = "localhost"
	peer, err := authz.PeerTLSConfig(p.server)
	is.NoErr(err)
	got, err = dial(t, addr, peer).call()
	is.NoErr(err)
	is.Equal(got, "node1 server")
}

func TestTLSRejects(t *testing.T) {
	p := newPKI(t)
	addr := echoServer(t, serverConfig(t, p.server))
	other := authztest.NewCA(t, "another CA")
	good := clientConfig(t, p.client, "127.0.0.1")

	withCert := func(ca *authztest.CA, c authztest.Cert) *tls.Config {
		certPEM, keyPEM := ca.Issue(t, c)
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		conf := good.Clone()
		conf.GetClientCertificate = nil
		conf.Certificates = []tls.Certificate{pair}
		return conf
	}
	noCert := good.Clone()
	noCert.GetClientCertificate = nil
	tls12 := good.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	hour := time.Hour

	for _, tc := range []struct {
		name string
		conf *tls.Config
	}{
		{"a client with no certificate", noCert},
		{"a certificate from another CA", withCert(other, authztest.Cert{CommonName: "alice", Role: authz.RoleClient})},
		{"an expired certificate", withCert(p.ca, authztest.Cert{CommonName: "alice", Role: authz.RoleClient,
			NotBefore: time.Now().Add(-3 * hour), NotAfter: time.Now().Add(-hour)})},
		{"a certificate not valid yet", withCert(p.ca, authztest.Cert{CommonName: "alice", Role: authz.RoleClient,
			NotBefore: time.Now().Add(hour), NotAfter: time.Now().Add(3 * hour)})},
		{"a server name the certificate does not have", clientConfig(t, p.client, "node2.example")},
		{"a client that speaks only TLS 1.2", tls12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			got, err := dial(t, addr, tc.conf).call()
			is.True(err != nil)
			is.True(!isTimeout(err)) // refused, not left hanging
			is.Equal(got, "")
		})
	}

	t.Run("a plaintext client", func(t *testing.T) {
		is := is.New(t)
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		is.NoErr(err)
		defer c.Close()
		is.NoErr(c.SetDeadline(time.Now().Add(10 * time.Second)))
		_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
		is.NoErr(err)
		line, err := bufio.NewReader(c).ReadString('\n')
		is.True(err != nil) // the server hangs up
		is.True(!isTimeout(err))
		is.True(!strings.Contains(line, "client"))
	})
}

func TestAClientCertificateCannotPassAsAServer(t *testing.T) {
	p := newPKI(t)

	t.Run("a server refuses to be configured with one", func(t *testing.T) {
		is := is.New(t)
		_, err := authz.ServerTLSConfig(p.client)
		is.True(errors.Is(err, authz.ErrWrongRole))
		_, err = authz.PeerTLSConfig(p.client)
		is.True(errors.Is(err, authz.ErrWrongRole))
	})

	// A server built by hand around a client certificate.
	pair, err := tls.LoadX509KeyPair(p.client.CertFile, p.client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	impostor := echoServer(t, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAnyClientCert,
	})
	peerOpts := p.server
	peerOpts.ServerName = "127.0.0.1"
	peer, err := authz.PeerTLSConfig(peerOpts)
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string]*tls.Config{
		"a client refuses one": clientConfig(t, p.client, "127.0.0.1"),
		"a peer refuses one":   peer,
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			_, err := dial(t, impostor, conf).call()
			var verr *tls.CertificateVerificationError
			is.True(errors.As(err, &verr))
			is.True(strings.Contains(err.Error(), "key usage"))
		})
	}
}

func TestRotatedCertificatesAreUsedWithoutDroppingConnections(t *testing.T) {
	is := is.New(t)
	p := newPKI(t)
	var reloads []error
	p.server.OnReload = func(err error) { reloads = append(reloads, err) }
	addr := echoServer(t, serverConfig(t, p.server))
	client := clientConfig(t, p.client, "127.0.0.1")

	live := dial(t, addr, client)
	got, err := live.call()
	is.NoErr(err)
	is.Equal(got, "alice client")
	oldSerial := live.serverSerial()

	// Rotate the server's certificate and the client's, to a new name.
	p.ca.WriteFiles(t, p.dir, "node1", authztest.Cert{CommonName: "node1", Role: authz.RoleServer})
	p.ca.WriteFiles(t, p.dir, "alice", authztest.Cert{CommonName: "alice-2", Role: authz.RoleClient})

	fresh := dial(t, addr, client)
	got, err = fresh.call()
	is.NoErr(err)
	is.Equal(got, "alice-2 client")            // the client presented its new certificate
	is.True(fresh.serverSerial() != oldSerial) // and the server its new one

	got, err = live.call() // the connection made before the rotation lives on
	is.NoErr(err)
	is.Equal(got, "alice client")
	is.Equal(live.serverSerial(), oldSerial)
	is.True(len(reloads) > 0)
	is.NoErr(reloads[len(reloads)-1])
}

func TestABadRotationKeepsTheOldCertificate(t *testing.T) {
	is := is.New(t)
	p := newPKI(t)
	reloads := make(chan error, 16)
	p.server.OnReload = func(err error) { reloads <- err }
	addr := echoServer(t, serverConfig(t, p.server))
	client := clientConfig(t, p.client, "127.0.0.1")
	first := dial(t, addr, client)
	_, err := first.call()
	is.NoErr(err)

	// Only the certificate replaced, with the key still the old one.
	certPEM, _ := p.ca.Issue(t, authztest.Cert{CommonName: "node1", Role: authz.RoleServer})
	authztest.WriteFile(t, p.server.CertFile, certPEM)

	second := dial(t, addr, client)
	_, err = second.call()
	is.NoErr(err)
	is.Equal(second.serverSerial(), first.serverSerial())
	is.True((<-reloads) != nil)

	// Replacing a server certificate with a client one is refused the same way.
	p.ca.WriteFiles(t, p.dir, "node1", authztest.Cert{CommonName: "node1", Role: authz.RoleClient})
	third := dial(t, addr, client)
	_, err = third.call()
	is.NoErr(err)
	is.Equal(third.serverSerial(), first.serverSerial())
	is.True(errors.Is(<-reloads, authz.ErrWrongRole))
}

func TestAServerStartsTrustingANewCAWithoutARestart(t *testing.T) {
	is := is.New(t)
	p := newPKI(t)
	addr := echoServer(t, serverConfig(t, p.server))
	next := authztest.NewCA(t, "next CA")
	dir := t.TempDir()
	nextClient := next.WriteFiles(t, dir, "bob", authztest.Cert{CommonName: "bob", Role: authz.RoleClient})
	nextClient.CAFile = p.client.CAFile // bob still trusts the old CA's server
	conf := clientConfig(t, nextClient, "127.0.0.1")

	_, err := dial(t, addr, conf).call()
	is.True(err != nil)

	authztest.WriteFile(t, p.server.CAFile, append(p.ca.PEM(), next.PEM()...))
	got, err := dial(t, addr, conf).call()
	is.NoErr(err)
	is.Equal(got, "bob client")
}

func TestTLSConfigsNeedTheirFiles(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(p.dir, "missing.pem")
	for _, tc := range []struct {
		name string
		opts authz.TLSOptions
	}{
		{"no files", authz.TLSOptions{}},
		{"a missing certificate", authz.TLSOptions{CAFile: p.server.CAFile, CertFile: missing, KeyFile: p.server.KeyFile}},
		{"a missing CA", authz.TLSOptions{CAFile: missing, CertFile: p.server.CertFile, KeyFile: p.server.KeyFile}},
		{"a CA file with no certificate", authz.TLSOptions{CAFile: p.server.KeyFile, CertFile: p.server.CertFile, KeyFile: p.server.KeyFile}},
		{"a key that is not the certificate's", authz.TLSOptions{CAFile: p.server.CAFile, CertFile: p.server.CertFile, KeyFile: p.client.KeyFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			for _, build := range []func(authz.TLSOptions) (*tls.Config, error){
				authz.ServerTLSConfig, authz.ClientTLSConfig, authz.PeerTLSConfig,
			} {
				_, err := build(tc.opts)
				is.True(err != nil)
				is.True(strings.HasPrefix(err.Error(), "authz: "))
			}
		})
	}
}
