package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/authz"
	"github.com/matryer/is"
)

// run runs dislog-certs with args, from dir, and returns what it printed.
func run(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	t.Chdir(dir)
	var out bytes.Buffer
	cmd := newRootCommand(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestTheREADMECommands runs the commands of the README, in order.
func TestTheREADMECommands(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	steps := [][]string{
		{"config", "--out", "pki"},
		{"ca", "--dir", "pki/ca", "--csr", "pki/ca-csr.json"},
		{"issue", "--ca", "pki/ca", "--config", "pki/ca-config.json", "--csr", "pki/csr.json",
			"--role", "server", "--cn", "node1", "--hosts", "localhost,127.0.0.1", "--out", "pki/node1"},
		{"issue", "--ca", "pki/ca", "--role", "peer", "--cn", "node2", "--hosts", "localhost,127.0.0.1", "--out", "pki/node2"},
		{"issue", "--ca", "pki/ca", "--role", "client", "--cn", "alice", "--out", "pki/alice"},
	}
	for _, args := range steps {
		out, err := run(t, dir, args...)
		is.NoErr(err) // dislog-certs args
		is.True(strings.Contains(out, "pki/"))
	}

	at := func(name string) authz.TLSOptions {
		return authz.TLSOptions{
			CAFile:     filepath.Join(dir, "pki", name, "ca.pem"),
			CertFile:   filepath.Join(dir, "pki", name, name+".pem"),
			KeyFile:    filepath.Join(dir, "pki", name, name+"-key.pem"),
			ServerName: "localhost",
		}
	}
	for _, build := range []func(authz.TLSOptions) (*tls.Config, error){authz.ServerTLSConfig, authz.PeerTLSConfig} {
		for _, node := range []string{"node1", "node2"} {
			_, err := build(at(node))
			is.NoErr(err)
		}
		_, err := build(at("alice"))
		is.True(errors.Is(err, authz.ErrWrongRole))
	}
	_, err := authz.ClientTLSConfig(at("alice"))
	is.NoErr(err)
	fi, err := os.Stat(at("alice").KeyFile)
	is.NoErr(err)
	is.Equal(fi.Mode().Perm(), os.FileMode(0o600))
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, dir, "ca", "--dir", "ca"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, dir, "config"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a second CA in the same place", []string{"ca", "--dir", "ca"}, "already exists"},
		{"issuing from no CA", []string{"issue", "--ca", "nowhere", "--role", "client", "--cn", "alice"}, "dislog-certs ca --dir nowhere"},
		{"issuing with no role", []string{"issue", "--cn", "alice"}, `"role" not set`},
		{"an unknown role", []string{"issue", "--role", "king", "--cn", "alice"}, "unknown role"},
		{"a missing CSR file", []string{"issue", "--role", "client", "--cn", "alice", "--csr", "nope.json"}, "no such file"},
		{"a missing config file", []string{"issue", "--role", "client", "--cn", "alice", "--config", "nope.json"}, "nope.json"},
		{"overwriting config files", []string{"config"}, "--force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			out, err := run(t, dir, tc.args...)
			is.True(err != nil)
			is.True(strings.Contains(err.Error()+out, tc.want)) // the error says what to do
		})
	}
}
