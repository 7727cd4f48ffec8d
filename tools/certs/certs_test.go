package certs_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/tools/certs"
	"github.com/matryer/is"
)

func TestMain(m *testing.M) {
	cflog.Level = cflog.LevelError // cfssl logs every request at info
	os.Exit(m.Run())
}

func newCA(t *testing.T) *certs.CA {
	t.Helper()
	ca, err := certs.NewCA(filepath.Join(t.TempDir(), "ca"), nil)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func issue(t *testing.T, ca *certs.CA, dir string, req certs.IssueRequest) certs.Files {
	t.Helper()
	files, err := ca.Issue(dir, req)
	if err != nil {
		t.Fatalf("Issue %s %q: %v", req.Role, req.CommonName, err)
	}
	return files
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".pem")+"-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

// subjectServer accepts TLS connections on 127.0.0.1 and answers each line
// with the caller's subject, "<name> <role>".
func subjectServer(t *testing.T, conf *tls.Config) string {
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
			go func() {
				tc := tls.Server(c, conf)
				defer tc.Close()
				if tc.Handshake() != nil {
					return
				}
				sub, err := authz.SubjectFromState(tc.ConnectionState())
				if err != nil {
					return
				}
				if _, err := bufio.NewReader(tc).ReadString('\n'); err == nil {
					fmt.Fprintf(tc, "%s %s\n", sub.Name, sub.Role)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// call dials addr and makes one round trip: TLS 1.3 reports a refused client
// certificate on the first read, so that is where rejections show.
func call(t *testing.T, addr string, conf *tls.Config) (string, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, conf)
	if _, err := c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func TestIssuedCertificatesWorkWithAuthz(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	dir := t.TempDir()
	node1 := issue(t, ca, filepath.Join(dir, "node1"), certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1", Hosts: []string{"127.0.0.1", "localhost"}})
	node2 := issue(t, ca, filepath.Join(dir, "node2"), certs.IssueRequest{Role: certs.RolePeer, CommonName: "node2", Hosts: []string{"localhost"}})
	alice := issue(t, ca, filepath.Join(dir, "alice"), certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice"})

	server, err := authz.ServerTLSConfig(node1)
	is.NoErr(err)
	addr := subjectServer(t, server)

	alice.ServerName = "127.0.0.1"
	client, err := authz.ClientTLSConfig(alice)
	is.NoErr(err)
	got, err := call(t, addr, client)
	is.NoErr(err)
	is.Equal(got, "alice client")

	node2.ServerName = "localhost"
	peer, err := authz.PeerTLSConfig(node2)
	is.NoErr(err)
	got, err = call(t, addr, peer)
	is.NoErr(err)
	is.Equal(got, "node2 server")
}

func TestAClientCertificateCannotPassAsAServer(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	dir := t.TempDir()
	alice := issue(t, ca, filepath.Join(dir, "alice"), certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice", Hosts: []string{"127.0.0.1"}})
	node1 := issue(t, ca, filepath.Join(dir, "node1"), certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1", Hosts: []string{"127.0.0.1"}})

	_, err := authz.ServerTLSConfig(alice)
	is.True(errors.Is(err, authz.ErrWrongRole))
	_, err = authz.PeerTLSConfig(alice)
	is.True(errors.Is(err, authz.ErrWrongRole))

	// A server set up by hand with alice's certificate, even for a SAN she has.
	pair, err := tls.LoadX509KeyPair(alice.CertFile, alice.KeyFile)
	is.NoErr(err)
	impostor := subjectServer(t, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert})
	node1.ServerName = "127.0.0.1"
	for _, build := range []func(authz.TLSOptions) (*tls.Config, error){authz.ClientTLSConfig, authz.PeerTLSConfig} {
		conf, err := build(node1)
		is.NoErr(err)
		_, err = call(t, impostor, conf)
		var verr *tls.CertificateVerificationError
		is.True(errors.As(err, &verr))
	}
}

func TestDefaults(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	is.Equal(ca.Certificate().Subject.CommonName, "Dislog CA")
	is.True(ca.Certificate().IsCA)
	caLife := ca.Certificate().NotAfter.Sub(ca.Certificate().NotBefore)
	is.True(caLife > 4*365*24*time.Hour && caLife < 6*365*24*time.Hour)

	dir := t.TempDir()
	files := issue(t, ca, dir, certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1", Hosts: []string{"node1.example", "10.0.0.1"}})
	is.Equal(files.CertFile, filepath.Join(dir, "node1.pem"))
	is.Equal(files.KeyFile, filepath.Join(dir, "node1-key.pem"))
	is.Equal(files.CAFile, filepath.Join(dir, "ca.pem"))
	cert := readCert(t, files.CertFile)
	key, ok := cert.PublicKey.(*ecdsa.PublicKey)
	is.True(ok)
	is.Equal(key.Curve, elliptic.P256())
	is.Equal(cert.DNSNames, []string{"node1.example"})
	is.Equal(len(cert.IPAddresses), 1)
	is.Equal(cert.IPAddresses[0].String(), "10.0.0.1")
	is.Equal(cert.Subject.OrganizationalUnit, []string{"server"})
	is.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	life := cert.NotAfter.Sub(cert.NotBefore)
	is.True(life > 364*24*time.Hour && life < 367*24*time.Hour)
	is.NoErr(cert.CheckSignatureFrom(ca.Certificate()))

	client := readCert(t, issue(t, ca, dir, certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice"}).CertFile)
	is.Equal(client.Subject.OrganizationalUnit, []string{"client"})
	is.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

func TestKeysAreWrittenForTheOwnerOnly(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	files := issue(t, ca, t.TempDir(), certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice"})
	for path, want := range map[string]os.FileMode{
		ca.KeyFile:     0o600,
		files.KeyFile:  0o600,
		ca.CertFile:    0o644,
		files.CertFile: 0o644,
		files.CAFile:   0o644,
	} {
		fi, err := os.Stat(path)
		is.NoErr(err)
		is.Equal(fi.Mode().Perm(), want) // path
	}
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(files.CertFile), ".*tmp*"))
	is.NoErr(err)
	is.Equal(len(leftovers), 0) // no temporary files left behind
}

func TestACAIsNeverOverwritten(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	dir := filepath.Dir(ca.CertFile)
	_, err := certs.NewCA(dir, nil)
	is.True(errors.Is(err, certs.ErrCAExists))

	reopened, err := certs.OpenCA(dir)
	is.NoErr(err)
	is.True(reopened.Certificate().Equal(ca.Certificate()))
}

func TestOpenCARefusesWhatIsNotACA(t *testing.T) {
	ca := newCA(t)
	leafDir := t.TempDir()
	leaf := issue(t, ca, leafDir, certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice"})
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  error
	}{
		{"an empty directory", func(t *testing.T) string { return t.TempDir() }, certs.ErrNoCA},
		{"a leaf certificate", func(t *testing.T) string {
			dir := t.TempDir()
			copyFile(t, leaf.CertFile, filepath.Join(dir, certs.CACertFile))
			copyFile(t, leaf.KeyFile, filepath.Join(dir, certs.CAKeyFile))
			return dir
		}, nil},
		{"a certificate without its key", func(t *testing.T) string {
			dir := t.TempDir()
			copyFile(t, ca.CertFile, filepath.Join(dir, certs.CACertFile))
			copyFile(t, leaf.KeyFile, filepath.Join(dir, certs.CAKeyFile))
			return dir
		}, nil},
		{"garbage", func(t *testing.T) string {
			dir := t.TempDir()
			is.New(t).NoErr(os.WriteFile(filepath.Join(dir, certs.CACertFile), []byte("not pem"), 0o600))
			copyFile(t, ca.KeyFile, filepath.Join(dir, certs.CAKeyFile))
			return dir
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := certs.OpenCA(tc.setup(t))
			is.True(err != nil)
			is.True(strings.HasPrefix(err.Error(), "certs: "))
			if tc.want != nil {
				is.True(errors.Is(err, tc.want))
			}
		})
	}
}

func TestIssueRefusesRequestsThatMakeNoUsableCertificate(t *testing.T) {
	ca := newCA(t)
	for _, tc := range []struct {
		name string
		req  certs.IssueRequest
	}{
		{"an unknown role", certs.IssueRequest{Role: "admin", CommonName: "x"}},
		{"no common name", certs.IssueRequest{Role: certs.RoleClient}},
		{"a common name posing as a role", certs.IssueRequest{Role: certs.RoleClient, CommonName: "role:server"}},
		{"a server with no host", certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1"}},
		{"a name that is a path", certs.IssueRequest{Role: certs.RoleClient, CommonName: "../alice"}},
		{"a name that would overwrite the CA", certs.IssueRequest{Role: certs.RoleClient, CommonName: "ca"}},
		{"a profile the config lacks", certs.IssueRequest{Role: certs.RoleClient, CommonName: "alice", Profile: "nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			_, err := ca.Issue(dir, tc.req)
			is.True(errors.Is(err, certs.ErrInvalidRequest))
			entries, _ := os.ReadDir(dir)
			is.Equal(len(entries), 0) // nothing written
		})
	}
}

func TestAProfileCannotGiveACertificateTheWrongRole(t *testing.T) {
	signing := func(t *testing.T, clientUsages string) *config.Signing {
		path := filepath.Join(t.TempDir(), "ca-config.json")
		text := `{"signing": {"default": {"usages": ["digital signature", "client auth"], "expiry": "1h"},
			"profiles": {
				"client": {"usages": [` + clientUsages + `], "expiry": "1h"},
				"server": {"usages": ["digital signature", "client auth"], "expiry": "1h"}
			}}}`
		is.New(t).NoErr(os.WriteFile(path, []byte(text), 0o600))
		s, err := certs.LoadSigning(path)
		is.New(t).NoErr(err)
		return s
	}
	ca := newCA(t)
	for _, tc := range []struct {
		name   string
		role   certs.Role
		usages string
	}{
		{"a client profile with server auth", certs.RoleClient, `"digital signature", "client auth", "server auth"`},
		{"a client profile with the any usage", certs.RoleClient, `"digital signature", "any"`},
		{"a client profile without client auth", certs.RoleClient, `"digital signature", "code signing"`},
		{"a server profile without server auth", certs.RoleServer, `"digital signature", "client auth"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			dir := t.TempDir()
			_, err := ca.Issue(dir, certs.IssueRequest{Role: tc.role, CommonName: "x", Hosts: []string{"localhost"}, Signing: signing(t, tc.usages)})
			is.True(errors.Is(err, certs.ErrRoleMismatch))
			entries, _ := os.ReadDir(dir)
			is.Equal(len(entries), 0)
		})
	}
}

func TestCFSSLFilesAreReadAndWritten(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()

	// The default signing config is a file cfssl itself loads.
	cfg, err := config.LoadConfig(certs.DefaultSigningJSON())
	is.NoErr(err)
	for _, p := range []string{"server", "peer", "client"} {
		is.True(cfg.Signing.Profiles[p] != nil)
	}

	// A CA CSR written, edited, and read back.
	req := certs.DefaultCACSR()
	req.CN = "Acme Dislog CA"
	req.KeyRequest = &csr.KeyRequest{A: "ecdsa", S: 384}
	data, err := certs.MarshalCSR(req)
	is.NoErr(err)
	is.NoErr(os.WriteFile(filepath.Join(dir, "ca-csr.json"), data, 0o600))
	back, err := certs.LoadCSR(filepath.Join(dir, "ca-csr.json"))
	is.NoErr(err)
	is.Equal(back.CN, "Acme Dislog CA")
	ca, err := certs.NewCA(filepath.Join(dir, "ca"), back)
	is.NoErr(err)
	is.Equal(ca.Certificate().Subject.CommonName, "Acme Dislog CA")
	is.Equal(ca.Certificate().PublicKey.(*ecdsa.PublicKey).Curve, elliptic.P384())

	// A cfssl user's leaf CSR, with its own names and hosts, and no key section.
	is.NoErr(os.WriteFile(filepath.Join(dir, "node-csr.json"), []byte(`{
		"CN": "node7", "hosts": ["node7.acme.internal"],
		"names": [{"C": "NZ", "O": "Acme", "OU": "storage"}]}`), 0o600))
	leafReq, err := certs.LoadCSR(filepath.Join(dir, "node-csr.json"))
	is.NoErr(err)
	files := issue(t, ca, filepath.Join(dir, "node7"), certs.IssueRequest{Role: certs.RoleServer, CSR: leafReq})
	cert := readCert(t, files.CertFile)
	is.Equal(cert.Subject.CommonName, "node7")
	is.Equal(cert.Subject.Organization, []string{"Acme"})
	is.Equal(cert.Subject.OrganizationalUnit, []string{"storage"}) // theirs, not ours
	is.Equal(cert.DNSNames, []string{"node7.acme.internal"})
	is.Equal(cert.PublicKey.(*ecdsa.PublicKey).Curve, elliptic.P256())

	bad := filepath.Join(dir, "bad.json")
	is.NoErr(os.WriteFile(bad, []byte("{not json"), 0o600))
	_, err = certs.LoadCSR(bad)
	is.True(err != nil)
	_, err = certs.LoadSigning(bad)
	is.True(err != nil)
	is.NoErr(os.WriteFile(bad, []byte(`{"signing": 3}`), 0o600))
	_, err = certs.LoadSigning(bad)
	is.True(err != nil)
}

func TestReissuingRotatesInPlace(t *testing.T) {
	is := is.New(t)
	ca := newCA(t)
	dir := t.TempDir()
	req := certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1", Hosts: []string{"127.0.0.1"}}
	first := readCert(t, issue(t, ca, dir, req).CertFile)
	second := readCert(t, issue(t, ca, dir, req).CertFile)
	is.True(first.SerialNumber.Cmp(second.SerialNumber) != 0)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkIssue is the cost of one certificate: an ECDSA P-256 key, a CSR,
// and cfssl's signing, files included. A dev-mode server pays it a few times
// on its first start.
func BenchmarkIssue(b *testing.B) {
	ca, err := certs.NewCA(filepath.Join(b.TempDir(), "ca"), nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for b.Loop() {
		if _, err := ca.Issue(dir, certs.IssueRequest{Role: certs.RoleServer, CommonName: "node1", Hosts: []string{"127.0.0.1", "localhost"}}); err != nil {
			b.Fatal(err)
		}
	}
}
