package localcluster

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"github.com/dislog/dislog/client"
	"github.com/matryer/is"
)

func TestMain(m *testing.M) {
	cflog.Level = cflog.LevelError
	os.Exit(m.Run())
}

func TestInProcessNodeServesTheClientAndCloseRemovesIt(t *testing.T) {
	is := is.New(t)
	cl, err := StartInProcess()
	is.NoErr(err)
	is.Equal(len(cl.Addrs), 1)
	is.True(strings.HasPrefix(cl.Addrs[0], "127.0.0.1:"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leader, err := cl.Leader(ctx)
	is.NoErr(err)
	is.Equal(leader, cl.Addrs[0]) // a node of one leads

	c, err := cl.Dial(leader)
	is.NoErr(err)
	_, err = c.CreateTopic(ctx, "t", client.TopicConfig{})
	is.NoErr(err) // the client certificate may administer
	off, err := c.Produce(ctx, "t", client.Record{Value: []byte("v")})
	is.NoErr(err) // and produce
	is.Equal(off, uint64(0))
	is.NoErr(c.Close())

	is.NoErr(cl.Close())
	_, err = os.Stat(cl.Dir)
	is.True(errors.Is(err, fs.ErrNotExist)) // Close removed the directory
}

// fakeDislog writes a script that prints help listing flags, as dislog --help does.
func fakeDislog(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dislog")
	script := "#!/bin/sh\necho 'Usage:\n  dislog [flags]\n\nFlags:'\n"
	for _, f := range flags {
		script += "echo '      " + f + " string   what it does'\n"
	}
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestCheckReplicationFlags(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		missing string // "" when none is
	}{
		{"a single-node dislog lacks three", []string{"--addr", "--node-id", "--data-dir"}, "no --bootstrap, --join, --serf-addr flag"},
		{"a flag that only starts like one does not count", []string{"--bootstrap-expect", "--join", "--serf-addr", "--node-id"}, "no --bootstrap flag"},
		{"a replicating dislog has them all", []string{"--bootstrap", "--bootstrap-expect", "--join", "--serf-addr", "--node-id"}, ""},
		{"a boolean flag printed as cobra prints it counts", []string{"--bootstrap[=true|false]", "--join", "--serf-addr", "--node-id"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			err := CheckReplicationFlags(context.Background(), fakeDislog(t, tc.flags...))
			if tc.missing == "" {
				is.NoErr(err)
				return
			}
			is.True(errors.Is(err, ErrNoReplication))
			if !strings.Contains(err.Error(), tc.missing) {
				t.Errorf("error %q lacks %q", err, tc.missing)
			}
		})
	}
}

func TestStartProcessesRefusesADislogWithoutReplication(t *testing.T) {
	is := is.New(t)
	_, err := StartProcesses(context.Background(), Options{Bin: fakeDislog(t, "--addr"), Nodes: 3})
	is.True(errors.Is(err, ErrNoReplication))
}

func TestPrefixWriterPrefixesWholeLines(t *testing.T) {
	is := is.New(t)
	var out strings.Builder
	w := &prefixWriter{w: &out, prefix: "node1: "}
	for _, s := range []string{"one\ntw", "o\n", "three\nfour"} {
		n, err := w.Write([]byte(s))
		is.NoErr(err)
		is.Equal(n, len(s))
	}
	is.Equal(out.String(), "node1: one\nnode1: two\nnode1: three\n") // "four" waits for its newline
}
