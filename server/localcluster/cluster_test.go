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

	"github.com/dislog/dislog/client"
	"github.com/matryer/is"
)

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

// TestProcessNodesCanBeKilledRestartedPausedAndResumed runs three dislog processes, each on its own
// loopback IP, and checks that a killed node serves again after Restart, on the same address,
// and that a paused one answers again after Resume.
func TestProcessNodesCanBeKilledRestartedPausedAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := BuildDislog(ctx, t.TempDir())
	is.NoErr(err)
	ips := []string{"127.0.0.121", "127.0.0.122", "127.0.0.123"}
	var advertised []string
	cl, err := StartProcesses(ctx, Options{Bin: bin, Nodes: 3, IPs: ips, Advertise: func(node int, listen string) (string, error) {
		is.True(strings.HasPrefix(listen, ips[node]+":")) // each node listens on its own IP
		advertised = append(advertised, listen)
		return listen, nil
	}})
	is.NoErr(err)
	defer cl.Close()
	is.Equal(cl.Addrs, advertised)

	answers := func(i int) bool {
		c, err := cl.Dial(cl.Addrs[i])
		is.NoErr(err)
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		servers, err := c.GetServers(ctx)
		return err == nil && len(servers) == 3
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			case <-tick.C:
			}
		}
	}

	is.NoErr(cl.Kill(2))
	is.True(cl.Kill(2) != nil) // a node that is down cannot be killed again
	is.True(!answers(2))
	is.NoErr(cl.Restart(ctx, 2))
	is.True(cl.Restart(ctx, 2) != nil) // nor a running one restarted
	waitFor("node3 to answer after its restart", func() bool { return answers(2) })

	is.NoErr(cl.Pause(1))
	short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
	c, err := cl.Dial(cl.Addrs[1])
	is.NoErr(err)
	_, err = c.GetServers(short)
	cancelShort()
	c.Close()
	is.True(err != nil) // a paused node does not answer
	is.NoErr(cl.Resume(1))
	waitFor("node2 to answer after it resumes", func() bool { return answers(1) })

	is.NoErr(cl.Pause(0)) // Close resumes a paused node to stop it
	is.NoErr(cl.Close())
}

// A node that exits before it serves is reported with the end of its output, which says why; a
// port taken meanwhile (errPortTaken) is not what happened here, so the start is not tried again.
func TestANodeThatCannotStartIsReportedWithItsOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	is := is.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := BuildDislog(ctx, t.TempDir())
	is.NoErr(err)
	_, err = StartProcesses(ctx, Options{Bin: bin, Nodes: 3, Args: []string{"--raft-heartbeat-timeout=100ms", "--raft-leader-lease-timeout=1s"}})
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "exited before serving: its last output:"))
	is.True(strings.Contains(err.Error(), "LeaderLeaseTimeout")) // dislog's own reason
	is.True(!errors.Is(err, errPortTaken))
}
