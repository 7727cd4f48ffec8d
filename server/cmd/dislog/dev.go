package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/devca"
	"github.com/dislog/dislog/storelog"
)

// Where dev mode keeps its files, under the data directory. A local dislogctl looks for the client
// files here.
const (
	pkiDir         = "pki"
	devClientName  = "dev"
	devServerName  = "server"
	policyFileName = "policy.csv"
)

// devPolicy allows the dev client everything and servers replication; anyone else nothing.
const devPolicy = `# Dislog development policy, written on first start. Anything not allowed here is denied.
# The dev client may do everything:
p, dev, *, *
# Servers may replicate:
p, role:server, *, replicate
`

// devSetup is what dev mode made or found.
type devSetup struct {
	server, client authz.TLSOptions
	policyFile     string
	created        bool
}

// ensureDev makes, once, a CA, a server certificate for the hosts the node is dialed by, a client
// certificate and, if writePolicy, a policy in dataDir. A server certificate that does not cover the
// listening or advertised host is issued again.
func ensureDev(dataDir, nodeID, addr, advertise string, writePolicy bool) (*devSetup, error) {
	pki := filepath.Join(dataDir, pkiDir)
	ca, created, err := ensureCA(filepath.Join(pki, "ca"))
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	d := &devSetup{created: created, policyFile: filepath.Join(dataDir, policyFileName)}

	hosts := []string{"localhost", "127.0.0.1", "::1"}
	for _, a := range []string{addr, advertise} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !slices.Contains(hosts, h) {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
	}
	if nodeID == "" {
		if nodeID, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	d.server = filesIn(filepath.Join(pki, devServerName), devServerName)
	if created || !covers(d.server.CertFile, hosts) {
		req := devca.Request{Role: authz.RoleServer, CommonName: nodeID, Hosts: hosts}
		if err := issue(ca, req, d.server); err != nil {
			return nil, fmt.Errorf("dev server certificate: %w", err)
		}
		d.created = true
	}
	d.client = filesIn(filepath.Join(pki, devClientName), devClientName)
	if _, err := os.Stat(d.client.CertFile); created || errors.Is(err, fs.ErrNotExist) {
		if err := issue(ca, devca.Request{Role: authz.RoleClient, CommonName: devClientName}, d.client); err != nil {
			return nil, fmt.Errorf("dev client certificate: %w", err)
		}
		d.created = true
	}
	if writePolicy {
		if _, err := os.Stat(d.policyFile); errors.Is(err, fs.ErrNotExist) {
			// Written whole or not at all: a torn policy would stay, since only a missing one is rewritten.
			if err := writeFile(d.policyFile, []byte(devPolicy), 0o644); err != nil {
				return nil, fmt.Errorf("dev policy: %w", err)
			}
		}
	}
	return d, nil
}

// File names of the CA in its directory, as dislog-certs writes them.
const (
	caCertFile = "ca.pem"
	caKeyFile  = "ca-key.pem"
)

// ensureCA reads the CA in dir, or makes one there if dir has no CA certificate.
func ensureCA(dir string) (ca *devca.CA, created bool, err error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err == nil {
		keyPEM, err := os.ReadFile(filepath.Join(dir, caKeyFile))
		if err != nil {
			return nil, false, err
		}
		ca, err := devca.Parse(certPEM, keyPEM)
		return ca, false, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if ca, err = devca.New(devca.CAName); err != nil {
		return nil, false, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, false, err
	}
	// The key first: a CA certificate without its key is a CA this function would read, and fail on.
	if err := writeFile(filepath.Join(dir, caKeyFile), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFile(filepath.Join(dir, caCertFile), ca.CertPEM(), 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// issue signs req and writes the key, the certificate and a copy of the CA certificate where files
// names them, so each directory holds everything one node or client needs.
func issue(ca *devca.CA, req devca.Request, files authz.TLSOptions) error {
	certPEM, keyPEM, err := ca.Issue(req)
	if err != nil {
		return err
	}
	if err := writeFile(files.KeyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(files.CertFile, certPEM, 0o644); err != nil {
		return err
	}
	return writeFile(files.CAFile, ca.CertPEM(), 0o644)
}

// writeFile replaces path with data, creating its directory, with storelog.WriteFileAtomic, so a
// reader (authz reloads certificates) sees the old file or the new one, and a crash leaves one of
// them.
func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return storelog.WriteFileAtomic(storelog.OSFS(), path, data, perm)
}

func filesIn(dir, name string) authz.TLSOptions {
	return authz.TLSOptions{
		CAFile:   filepath.Join(dir, caCertFile),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
}

// covers reports whether the certificate in certFile is valid for every host.
func covers(certFile string, hosts []string) bool {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}
