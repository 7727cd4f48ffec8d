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
	"github.com/dislog/dislog/tools/certs"
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
	ca, created, err := certs.EnsureCA(filepath.Join(pki, "ca"))
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
	serverDir := filepath.Join(pki, devServerName)
	d.server = filesIn(serverDir, devServerName)
	if created || !covers(d.server.CertFile, hosts) {
		if d.server, err = ca.Issue(serverDir, certs.IssueRequest{
			Role: certs.RoleServer, CommonName: nodeID, Hosts: hosts, Name: devServerName,
		}); err != nil {
			return nil, fmt.Errorf("dev server certificate: %w", err)
		}
		d.created = true
	}
	clientDir := filepath.Join(pki, devClientName)
	d.client = filesIn(clientDir, devClientName)
	if _, err := os.Stat(d.client.CertFile); created || errors.Is(err, fs.ErrNotExist) {
		if d.client, err = ca.Issue(clientDir, certs.IssueRequest{Role: certs.RoleClient, CommonName: devClientName}); err != nil {
			return nil, fmt.Errorf("dev client certificate: %w", err)
		}
		d.created = true
	}
	if writePolicy {
		if _, err := os.Stat(d.policyFile); errors.Is(err, fs.ErrNotExist) {
			if err := os.WriteFile(d.policyFile, []byte(devPolicy), 0o644); err != nil {
				return nil, fmt.Errorf("dev policy: %w", err)
			}
		}
	}
	return d, nil
}

func filesIn(dir, name string) authz.TLSOptions {
	return authz.TLSOptions{
		CAFile:   filepath.Join(dir, certs.CACertFile),
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
