package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/matryer/is"
)

func TestSettingsComeFromFlagsThenTheEnvironmentThenTheConfigFile(t *testing.T) {
	is := is.New(t)
	file := filepath.Join(t.TempDir(), "dislog.toml")
	is.NoErr(os.WriteFile(file, []byte(`data-dir = "from-file"
addr = "127.0.0.1:1"
admin-addr = "127.0.0.1:2"
max-record-bytes = 5000
shutdown-timeout = "3s"
`), 0o644))
	env := map[string]string{"DISLOG_ADDR": "127.0.0.1:3", "DISLOG_ADMIN_ADDR": "127.0.0.1:4"}
	cmd := newCommand(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	is.NoErr(cmd.Flags().Parse([]string{"--config", file, "--admin-addr", "127.0.0.1:5"}))
	is.NoErr(applyConfig(cmd.Flags(), func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	is.Equal(get("data-dir"), "from-file")     // only the file sets it
	is.Equal(get("addr"), "127.0.0.1:3")       // the environment beats the file
	is.Equal(get("admin-addr"), "127.0.0.1:5") // a flag beats both
	is.Equal(get("max-record-bytes"), "5000")  // numbers
	is.Equal(get("shutdown-timeout"), "3s")    // durations
	is.Equal(get("segment-bytes"), "67108864") // defaults stay
}

func TestAConfigFileWithAnUnknownKeyIsRefused(t *testing.T) {
	is := is.New(t)
	file := filepath.Join(t.TempDir(), "dislog.toml")
	is.NoErr(os.WriteFile(file, []byte("data_dir = \"x\"\n"), 0o644))
	cmd := newCommand(func(string) (string, bool) { return "", false })
	is.NoErr(cmd.Flags().Parse([]string{"--config", file}))
	err := applyConfig(cmd.Flags(), func(string) (string, bool) { return "", false })
	is.True(err != nil && strings.Contains(err.Error(), `unknown key "data_dir"`))
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDev runs the command in dev mode on a free port and returns its address once it serves.
func startDev(t *testing.T, dataDir string) (addr string, stop func() error) {
	t.Helper()
	addr, _, stop = startDevAdmin(t, dataDir)
	return addr, stop
}

// startDevAdmin is startDev that also returns the admin server's address.
func startDevAdmin(t *testing.T, dataDir string) (addr, admin string, stop func() error) {
	t.Helper()
	addr, admin, _, stop = runDev(t, dataDir)
	return addr, admin, stop
}

// startDevBanner is startDev that also returns what the command printed on stdout: its banner.
func startDevBanner(t *testing.T, dataDir string) (addr string, banner func() string, stop func() error) {
	t.Helper()
	addr, _, banner, stop = runDev(t, dataDir)
	return addr, banner, stop
}

func runDev(t *testing.T, dataDir string) (addr, admin string, banner func() string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newCommand(func(string) (string, bool) { return "", false })
	var out, logs syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&logs)
	cmd.SetArgs([]string{"--data-dir", dataDir, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--node-id", "dev1"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if line, _, ok := strings.Cut(out.String(), "\n"); ok {
			if a, ok := strings.CutPrefix(line, "dislog: serving on "); ok {
				addr = a
				_, rest, _ := strings.Cut(out.String(), "admin:   http://")
				admin, _, _ = strings.Cut(rest, "/")
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dislog did not start:\n%s%s", out.String(), logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("dislog ended: %v\n%s%s", err, out.String(), logs.String())
		case <-tick.C:
		}
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return addr, admin, out.String, stop
}

func TestWithNoTLSFlagsDevModeMakesCertificatesAndAPolicyForTheDevClient(t *testing.T) {
	is := is.New(t)
	ctx := context.Background()
	dir := t.TempDir()
	addr, stop := startDev(t, dir)
	pki := filepath.Join(dir, "pki", "dev")
	dial := func(addr string) *client.Client {
		c, err := client.Dial(addr, client.WithTLSFiles(filepath.Join(pki, "ca.pem"), filepath.Join(pki, "dev.pem"), filepath.Join(pki, "dev-key.pem")))
		is.NoErr(err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial(addr)
	_, err := c.CreateTopic(ctx, "hello", client.TopicConfig{})
	is.NoErr(err)
	_, err = c.Produce(ctx, "hello", client.Record{Value: []byte("world")})
	is.NoErr(err)
	policy, err := os.ReadFile(filepath.Join(dir, "policy.csv"))
	is.NoErr(err)
	is.True(strings.Contains(string(policy), "p, dev, *, *"))
	is.NoErr(stop())

	// A second start keeps the CA, so the first client's files still work.
	caBefore, err := os.ReadFile(filepath.Join(dir, "pki", "ca", "ca.pem"))
	is.NoErr(err)
	addr, _ = startDev(t, dir)
	caAfter, err := os.ReadFile(filepath.Join(dir, "pki", "ca", "ca.pem"))
	is.NoErr(err)
	is.Equal(caBefore, caAfter)
	rec, err := dial(addr).Consume(ctx, "hello", 0)
	is.NoErr(err)
	is.Equal(string(rec.Value), "world")
}

func TestRaftTimingsThatCannotWorkAreRefusedWithTheReason(t *testing.T) {
	is := is.New(t)
	cmd := newCommand(func(string) (string, bool) { return "", false })
	var out, logs syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&logs)
	cmd.SetArgs([]string{"--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--admin-addr", "",
		"--raft-heartbeat-timeout", "100ms", "--raft-leader-lease-timeout", "1s"})
	err := cmd.ExecuteContext(context.Background())
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "LeaderLeaseTimeout")) // names the setting at fault
}

func TestABadPeerSourceIPIsRefused(t *testing.T) {
	is := is.New(t)
	cmd := newCommand(func(string) (string, bool) { return "", false })
	var out, logs syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&logs)
	cmd.SetArgs([]string{"--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--admin-addr", "", "--peer-source-ip", "node-a"})
	err := cmd.ExecuteContext(context.Background())
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), `peer source IP "node-a"`))
}
