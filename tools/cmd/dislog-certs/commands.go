package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/dislog/dislog/tools/certs"
	"github.com/spf13/cobra"
)

func newRootCommand(out io.Writer) *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "dislog-certs",
		Short: "Make a CA and issue Dislog server, peer and client certificates",
		Long: `dislog-certs makes a certificate authority and issues the certificates Dislog's
mutual TLS needs. Server and peer certificates carry the "server auth" and
"client auth" usages, client certificates "client auth" only: that is how
Dislog tells a server from a client. Keys are ECDSA P-256 unless a cfssl CSR
file says otherwise, and are written with mode 0600.`,
		SilenceUsage: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			cflog.Level = cflog.LevelError
			if verbose {
				cflog.Level = cflog.LevelDebug
			}
		},
	}
	root.SetOut(out)
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "show cfssl's log")
	root.AddCommand(newConfigCommand(out), newCACommand(out), newIssueCommand(out), newClusterCommand(out))
	return root
}

func newConfigCommand(out io.Writer) *cobra.Command {
	var dir string
	var force bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write the default cfssl files (ca-csr.json, ca-config.json, csr.json) to edit",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			caCSR, err := certs.MarshalCSR(certs.DefaultCACSR())
			if err != nil {
				return err
			}
			csr, err := certs.MarshalCSR(certs.DefaultCSR())
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			for _, f := range []struct {
				name string
				data []byte
			}{
				{"ca-csr.json", caCSR},
				{"ca-config.json", certs.DefaultSigningJSON()},
				{"csr.json", csr},
			} {
				path := filepath.Join(dir, f.name)
				if _, err := os.Stat(path); err == nil && !force {
					return fmt.Errorf("%s exists: pass --force to overwrite it", path)
				}
				if err := os.WriteFile(path, f.data, 0o644); err != nil {
					return err
				}
				fmt.Fprintln(out, path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "out", ".", "directory to write into")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite files that exist")
	return cmd
}

func newCACommand(out io.Writer) *cobra.Command {
	var dir, csrFile string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Make a CA: <dir>/ca.pem and <dir>/ca-key.pem",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			req := certs.DefaultCACSR()
			if csrFile != "" {
				var err error
				if req, err = certs.LoadCSR(csrFile); err != nil {
					return err
				}
			}
			ca, err := certs.NewCA(dir, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, ca.CertFile)
			fmt.Fprintln(out, ca.KeyFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "ca", "directory of the CA")
	cmd.Flags().StringVar(&csrFile, "csr", "", "cfssl CSR JSON for the CA (default: Dislog CA, ECDSA P-256, five years)")
	return cmd
}

func newIssueCommand(out io.Writer) *cobra.Command {
	var (
		caDir, role, cn, dir, name, csrFile, configFile, profile string
		hosts                                                    []string
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a server, peer or client certificate: <out>/<name>.pem, <name>-key.pem, ca.pem",
		Long: `issue signs a certificate with the CA and writes <out>/<name>.pem, <out>/<name>-key.pem
and a copy of the CA as <out>/ca.pem. Files already there are replaced, each by
an atomic rename, which is how a certificate is rotated: Dislog picks the new
one up on its next handshake.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ca, err := certs.OpenCA(caDir)
			if errors.Is(err, certs.ErrNoCA) {
				return fmt.Errorf("%w: make one with dislog-certs ca --dir %s", err, caDir)
			}
			if err != nil {
				return err
			}
			req := certs.IssueRequest{Role: certs.Role(role), CommonName: cn, Hosts: hosts, Profile: profile, Name: name}
			if csrFile != "" {
				if req.CSR, err = certs.LoadCSR(csrFile); err != nil {
					return err
				}
			}
			if configFile != "" {
				if req.Signing, err = certs.LoadSigning(configFile); err != nil {
					return err
				}
			}
			files, err := ca.Issue(dir, req)
			if err != nil {
				return err
			}
			for _, f := range []string{files.CertFile, files.KeyFile, files.CAFile} {
				fmt.Fprintln(out, f)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&caDir, "ca", "ca", "directory of the CA")
	f.StringVar(&role, "role", "", "server, peer or client (required)")
	f.StringVar(&cn, "cn", "", "common name: the subject Dislog's ACL sees (default: the CSR file's)")
	f.StringSliceVar(&hosts, "hosts", nil, "comma-separated DNS names and IP addresses the server is dialed by")
	f.StringVar(&dir, "out", ".", "directory to write into")
	f.StringVar(&name, "name", "", "base of the file names (default: the common name)")
	f.StringVar(&csrFile, "csr", "", "cfssl CSR JSON (key algorithm, names, hosts)")
	f.StringVar(&configFile, "config", "", "cfssl signing config, ca-config.json (default: profiles server, peer, client; one year)")
	f.StringVar(&profile, "profile", "", "signing profile (default: the role)")
	if err := cmd.MarkFlagRequired("role"); err != nil {
		panic(err) // the flag is defined just above
	}
	return cmd
}
