package authz

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// TLSOptions names the PEM files of one node or client.
//
// The certificate and key are read again on the next handshake after either
// file changes on disk (by size or modification time), so a rotated
// certificate is used without a restart; connections already open keep the
// certificate they were made with. Replace the files by renaming a finished
// file over the old one: if the new certificate and key do not load as a
// pair (say only one has been replaced yet), the old pair stays in use and
// the next handshake tries again.
//
// The CA file is the trust bundle. A server reads it again like the
// certificate, so it can start trusting a new CA without a restart. Clients
// and peers read it when their configuration is built, because crypto/tls
// has no hook to change the roots a client verifies with; to rotate a CA,
// first put the old and the new CA in every bundle and restart clients, then
// issue from the new CA.
type TLSOptions struct {
	CAFile   string
	CertFile string
	KeyFile  string
	// ServerName is the name a client or peer expects in the server's
	// certificate. Leave it empty for gRPC, which sets it from the address
	// it dials.
	ServerName string
	// OnReload, if set, is called after a change on disk was loaded (nil) or
	// could not be (the error; the old files stay in use).
	OnReload func(error)
}

// ServerTLSConfig returns the configuration of a server: TLS 1.3 or later,
// a client certificate required and verified against the CA file. The
// server's own certificate must be a server certificate (see [Role]), or
// the error wraps [ErrWrongRole]. Read the caller with [SubjectFromState].
//
// The returned configuration may be changed (NextProtos, for one) before it
// is used: each handshake starts from a clone of it with the current files.
func ServerTLSConfig(opts TLSOptions) (*tls.Config, error) {
	f, err := newTLSFiles(opts, true)
	if err != nil {
		return nil, err
	}
	m := f.current()
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{*m.cert},
		ClientCAs:    m.roots,
	}
	conf.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := f.current()
		c := conf.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*m.cert}
		c.ClientCAs = m.roots
		return c, nil
	}
	return conf, nil
}

// ClientTLSConfig returns the configuration of a client: TLS 1.3 or later,
// the server verified against the CA file (its certificate must allow server
// authentication, so a client certificate cannot pose as a server), and the
// client's certificate presented to it.
func ClientTLSConfig(opts TLSOptions) (*tls.Config, error) {
	f, err := newTLSFiles(opts, false)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    f.current().roots,
		ServerName: opts.ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return f.current().cert, nil
		},
	}, nil
}

// PeerTLSConfig returns the configuration a server dials another server
// with: a client configuration that presents the node's server certificate
// (the error wraps [ErrWrongRole] if it is not one) and accepts only a
// server at the other end. The other end accepts with [ServerTLSConfig] and
// limits internal calls to [RoleServer] subjects.
func PeerTLSConfig(opts TLSOptions) (*tls.Config, error) {
	f, err := newTLSFiles(opts, true)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    f.current().roots,
		ServerName: opts.ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return f.current().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			sub, err := SubjectFromState(cs)
			if err != nil {
				return err
			}
			if sub.Role != RoleServer {
				return fmt.Errorf("%w: peer %q is a %s", ErrWrongRole, sub.Name, sub.Role)
			}
			return nil
		},
	}, nil
}

// tlsFiles holds the certificate, key and CA bundle of one configuration and
// loads them again when they change on disk.
type tlsFiles struct {
	opts       TLSOptions
	needServer bool // the certificate must be a server certificate

	mu    sync.Mutex
	tried [3]stamp // the files as last loaded or tried
	cur   *tlsMaterial
}

type tlsMaterial struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

func newTLSFiles(opts TLSOptions, needServer bool) (*tlsFiles, error) {
	if opts.CAFile == "" || opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("authz: TLSOptions needs CAFile, CertFile and KeyFile")
	}
	f := &tlsFiles{opts: opts, needServer: needServer}
	f.tried = f.stat()
	m, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cur = m
	return f, nil
}

// current returns the files as they are on disk now, or the last good ones
// if they changed into something that does not load. It costs three stat
// calls, which is little next to the handshake it serves.
func (f *tlsFiles) current() *tlsMaterial {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.stat()
	if now == f.tried {
		return f.cur
	}
	f.tried = now
	m, err := f.load()
	if err == nil {
		f.cur = m
	}
	if f.opts.OnReload != nil {
		f.opts.OnReload(err)
	}
	return f.cur
}

func (f *tlsFiles) stat() [3]stamp {
	var s [3]stamp
	for i, name := range []string{f.opts.CAFile, f.opts.CertFile, f.opts.KeyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			s[i].err = true
			continue
		}
		s[i] = stamp{size: fi.Size(), modTime: fi.ModTime().UnixNano()}
	}
	return s
}

func (f *tlsFiles) load() (*tlsMaterial, error) {
	cert, err := tls.LoadX509KeyPair(f.opts.CertFile, f.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("authz: load key pair %s, %s: %w", f.opts.CertFile, f.opts.KeyFile, err)
	}
	if f.needServer && chainRole([]*x509.Certificate{cert.Leaf}) != RoleServer {
		return nil, fmt.Errorf("%w: %s (%q) is not a server certificate: it lacks the server auth usage",
			ErrWrongRole, f.opts.CertFile, cert.Leaf.Subject.CommonName)
	}
	pem, err := os.ReadFile(f.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("authz: read CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("authz: CA bundle %s holds no PEM certificate", f.opts.CAFile)
	}
	return &tlsMaterial{cert: &cert, roots: roots}, nil
}
