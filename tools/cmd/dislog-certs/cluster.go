package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/dislog/dislog/tools/certs"
	"github.com/spf13/cobra"
)

// renewBefore is how close to its expiry a certificate is issued again by cluster.
const renewBefore = 30 * 24 * time.Hour

// clusterPlan is what the cluster command makes: every name is also a directory under dir.
type clusterPlan struct {
	dir, cfsslDir string
	servers       []string
	hosts         []string // added to every server's own name
	clients       []string
	policy        bool
}

func newClusterCommand(out io.Writer) *cobra.Command {
	p := clusterPlan{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Make, once, the CA and every certificate of a cluster: an init step for containers",
		Long: `cluster makes what a cluster needs in --dir, and only what is missing, so it can run every
time a cluster starts (an init container) and a cluster brought up again keeps its
certificates:

  <dir>/ca/ca.pem, ca-key.pem           the CA, made once
  <dir>/<server>/<server>.pem, -key.pem, ca.pem
                                        one per --servers name, valid for that name and --hosts
  <dir>/<client>/<client>.pem, ...      one per --clients name (the ACL subject)
  <dir>/policy.csv                      with --policy: the clients may do everything,
                                        servers may replicate; written once, then yours

A certificate is issued again when it is missing, does not cover its host names, was not
signed by the CA in <dir>/ca, or expires within 30 days. The cfssl files in --cfssl, when
there (ca-csr.json, csr.json, ca-config.json: "dislog-certs config" writes them), replace the
defaults: key algorithm, names, expiries, profiles.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return p.run(out) },
	}
	f := cmd.Flags()
	f.StringVar(&p.dir, "dir", "pki", "directory of the CA and the certificates")
	f.StringVar(&p.cfsslDir, "cfssl", "", "directory of cfssl files that replace the defaults (ca-csr.json, csr.json, ca-config.json)")
	f.StringSliceVar(&p.servers, "servers", nil, "server names, comma separated: each is the certificate's common name and a host name in it (required)")
	f.StringSliceVar(&p.hosts, "hosts", nil, "more host names and IP addresses for every server certificate (localhost,127.0.0.1 for published ports)")
	f.StringSliceVar(&p.clients, "clients", []string{"admin"}, "client names, comma separated: each certificate's common name")
	f.BoolVar(&p.policy, "policy", false, "write <dir>/policy.csv if there is none")
	if err := cmd.MarkFlagRequired("servers"); err != nil {
		panic(err) // the flag is defined just above
	}
	return cmd
}

func (p clusterPlan) run(out io.Writer) error {
	caCSR, leafCSR, signing, err := p.cfsslFiles()
	if err != nil {
		return err
	}
	caDir := filepath.Join(p.dir, "ca")
	ca, err := certs.OpenCA(caDir)
	if errors.Is(err, certs.ErrNoCA) {
		if ca, err = certs.NewCA(caDir, caCSR); err == nil {
			fmt.Fprintln(out, "made", ca.CertFile)
		}
	}
	if err != nil {
		return err
	}
	issue := func(role certs.Role, name string, hosts []string) error {
		dir := filepath.Join(p.dir, name)
		certFile := filepath.Join(dir, name+".pem")
		if why := reissueReason(certFile, ca.Certificate(), hosts); why == "" {
			fmt.Fprintln(out, "kept", certFile)
			return nil
		} else if why != "missing" {
			fmt.Fprintf(out, "%s: %s, issuing it again\n", certFile, why)
		}
		req := certs.IssueRequest{Role: role, CommonName: name, Hosts: hosts, CSR: leafCSR, Signing: signing}
		if leafCSR != nil {
			// Issue fills in what the request leaves out; a shared CSR must not carry one
			// certificate's names into the next.
			c := *leafCSR
			req.CSR = &c
		}
		files, err := ca.Issue(dir, req)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintln(out, "made", files.CertFile)
		return nil
	}
	for _, s := range p.servers {
		hosts := append([]string{s}, p.hosts...)
		if err := issue(certs.RoleServer, s, hosts); err != nil {
			return err
		}
	}
	for _, c := range p.clients {
		if err := issue(certs.RoleClient, c, nil); err != nil {
			return err
		}
	}
	if p.policy {
		return p.writePolicy(out)
	}
	return nil
}

// cfsslFiles reads the cfssl files of --cfssl that exist; a file that is not there keeps its default.
func (p clusterPlan) cfsslFiles() (caCSR, leafCSR *csr.CertificateRequest, signing *config.Signing, err error) {
	if p.cfsslDir == "" {
		return nil, nil, nil, nil
	}
	present := func(name string) (string, bool) {
		path := filepath.Join(p.cfsslDir, name)
		_, err := os.Stat(path)
		return path, err == nil
	}
	if path, ok := present("ca-csr.json"); ok {
		if caCSR, err = certs.LoadCSR(path); err != nil {
			return nil, nil, nil, err
		}
	}
	if path, ok := present("csr.json"); ok {
		if leafCSR, err = certs.LoadCSR(path); err != nil {
			return nil, nil, nil, err
		}
	}
	if path, ok := present("ca-config.json"); ok {
		if signing, err = certs.LoadSigning(path); err != nil {
			return nil, nil, nil, err
		}
	}
	return caCSR, leafCSR, signing, nil
}

// reissueReason says why the certificate in certFile must be issued again, or "" if it is good.
func reissueReason(certFile string, ca *x509.Certificate, hosts []string) string {
	b, err := os.ReadFile(certFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing"
	}
	if err != nil {
		return err.Error()
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "not PEM"
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err.Error()
	}
	if cert.CheckSignatureFrom(ca) != nil {
		return "signed by another CA"
	}
	if time.Until(cert.NotAfter) < renewBefore {
		return "expires " + cert.NotAfter.Format(time.DateOnly)
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return "not valid for " + h
		}
	}
	return ""
}

func (p clusterPlan) writePolicy(out io.Writer) error {
	path := filepath.Join(p.dir, "policy.csv")
	if _, err := os.Stat(path); err == nil {
		fmt.Fprintln(out, "kept", path)
		return nil
	}
	var b strings.Builder
	b.WriteString("# Dislog ACL, written once by dislog-certs cluster; edit it, servers reload it. Anything not\n")
	b.WriteString("# allowed here is denied. The clients may do everything:\n")
	for _, c := range p.clients {
		fmt.Fprintf(&b, "p, %s, *, *\n", c)
	}
	b.WriteString("# Servers may replicate:\np, role:server, *, replicate\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(out, "made", path)
	return nil
}
