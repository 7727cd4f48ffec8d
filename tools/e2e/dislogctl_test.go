package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server/servertest"
	"github.com/matryer/is"
)

// binaries builds the commands the tests run, once per test binary.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// build returns the path of the command in pkg, a directory of a module of the repository
// relative to its root ("client/cmd/dislogctl"), built with `go build` in this module, which lists
// the commands in tool directives: the working tree in the workspace, the required version
// outside it.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "dislog-e2e-bin")
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	out := filepath.Join(binaries.dir, filepath.Base(pkg))
	buildMu.Lock()
	defer buildMu.Unlock()
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, "github.com/dislog/dislog/"+pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

var buildMu sync.Mutex

func TestMain(m *testing.M) {
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// ctlEnv runs dislogctl against one server as one client.
type ctlEnv struct {
	bin string
	dir string
	env []string
}

// newCtl builds dislogctl and points it at node as subject cn, through DISLOG_* variables.
func newCtl(t *testing.T, node *servertest.Node, cn string) *ctlEnv {
	t.Helper()
	f := node.ClientFiles(t, cn)
	return &ctlEnv{
		bin: build(t, "client/cmd/dislogctl"),
		dir: t.TempDir(),
		env: []string{
			"DISLOG_ADDR=" + node.Server.Addr(),
			"DISLOG_CA=" + f.CAFile, "DISLOG_CERT=" + f.CertFile, "DISLOG_KEY=" + f.KeyFile,
		},
	}
}

func (c *ctlEnv) command(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs dislogctl to the end and returns its exit code, stdout and stderr.
func (c *ctlEnv) run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := c.command(ctxT(t), stdin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("dislogctl %s: %v", strings.Join(args, " "), err)
		}
		code = exit.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// ok runs dislogctl, requires success and returns stdout.
func (c *ctlEnv) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := c.run(t, stdin, args...)
	if code != 0 {
		t.Fatalf("dislogctl %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestDislogctlTopics(t *testing.T) {
	is := is.New(t)
	ctl := newCtl(t, servertest.Start(t, ""), "alice")

	is.Equal(ctl.ok(t, "", "topics", "create", "orders"), "created topic \"orders\" (1 partition, 1 replica each; retention: keep all)\n")
	var created map[string]any
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, "", "topics", "create", "events", "--retention-age", "1h", "--retention-bytes", "1000000", "-o", "json")), &created))
	is.Equal(created["topic"], "events")
	is.Equal(created["retention_age"], "1h0m0s")
	is.Equal(created["retention_bytes"], 1e6)

	list := ctl.ok(t, "", "topics", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	is.Equal(len(lines), 3)
	is.True(strings.HasPrefix(lines[0], "TOPIC"))
	is.True(strings.HasPrefix(lines[1], "events "))
	is.True(strings.HasPrefix(lines[2], "orders "))
	var topics []map[string]any
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, "", "topics", "list", "-o", "json")), &topics))
	is.Equal(len(topics), 2)
	is.Equal(topics[1]["topic"], "orders")

	ctl.ok(t, "", "produce", "orders", "a", "b", "c")
	describe := ctl.ok(t, "", "topics", "describe", "orders")
	is.True(strings.Contains(describe, "records:            3\n"))
	var info map[string]any
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, "", "topics", "describe", "orders", "-o", "json")), &info))
	is.Equal(info["next_offset"], 3.0)
	is.Equal(info["lowest_offset"], 0.0)

	is.Equal(ctl.ok(t, "", "topics", "delete", "events"), "deleted topic \"events\"\n")
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, "", "topics", "list", "-o", "json")), &topics))
	is.Equal(len(topics), 1)

	code, _, errOut := ctl.run(t, "", "topics", "create", "orders")
	is.Equal(code, 1)
	is.Equal(errOut, "dislogctl: topic \"orders\" already exists; DescribeTopic shows it (AlreadyExists)\n")
	code, _, errOut = ctl.run(t, "", "topics", "create", "no/slash")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "invalid topic name"))
	is.True(strings.Contains(errOut, "(InvalidArgument)"))
	code, _, errOut = ctl.run(t, "", "topics", "describe", "nope")
	is.Equal(code, 1)
	is.Equal(errOut, "dislogctl: topic \"nope\" does not exist; create it with CreateTopic (NotFound)\n")
}

func TestDislogctlProduceAndConsume(t *testing.T) {
	is := is.New(t)
	ctl := newCtl(t, servertest.Start(t, ""), "alice")
	ctl.ok(t, "", "topics", "create", "orders")

	is.Equal(ctl.ok(t, "", "produce", "orders", "--key", "o-1", "-H", "source=web", "paid"), "produced 1 record to \"orders\" at offset 0\n")
	var lines []string
	for i := range 5000 {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	stdin := strings.Join(lines, "\n") + "\n"
	var summary map[string]any
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, stdin, "produce", "orders", "-o", "json")), &summary))
	is.Equal(summary, map[string]any{"topic": "orders", "records": 5000.0, "failed": 0.0, "first_offset": 1.0, "last_offset": 5000.0})

	out := ctl.ok(t, "", "consume", "orders", "--offset", "1")
	is.Equal(out, stdin) // stdin lines come back as they went in

	first := ctl.ok(t, "", "consume", "orders", "-n", "1", "-o", "json")
	var rec map[string]any
	is.NoErr(json.Unmarshal([]byte(first), &rec))
	is.Equal(rec["offset"], 0.0)
	is.Equal(rec["key"], "o-1")
	is.Equal(rec["value"], "paid")
	is.Equal(rec["headers"], []any{map[string]any{"key": "source", "value": "web"}})
	_, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
	is.NoErr(err)

	is.Equal(ctl.ok(t, "", "tail", "orders", "-n", "2"), "line 4998\nline 4999\n")
	is.Equal(ctl.ok(t, "", "consume", "orders", "--from-time", "1h", "-n", "1"), "paid\n")

	code, out, errOut := ctl.run(t, "", "consume", "orders", "--offset", "9999")
	is.Equal(code, 1)
	is.Equal(out, "")
	is.True(strings.Contains(errOut, "offset 9999 is past the end of partition 0 of topic \"orders\", whose next offset is 5001"))
	is.True(strings.Contains(errOut, "(OutOfRange)"))

	code, out, errOut = ctl.run(t, "x\ny\n", "produce", "nope")
	is.Equal(code, 1)
	is.Equal(out, "")
	is.Equal(errOut, "dislogctl: 2 of 2 records not written; the first error: topic \"nope\" does not exist; create it with CreateTopic (NotFound)\n")
}

func TestDislogctlProgressLine(t *testing.T) {
	is := is.New(t)
	ctl := newCtl(t, servertest.Start(t, ""), "alice")
	ctl.ok(t, "", "topics", "create", "numbers")
	stdin := strings.Repeat("1234567890\n", 20_000)

	code, _, errOut := ctl.run(t, stdin, "produce", "numbers", "--progress")
	is.Equal(code, 0)
	is.True(strings.HasPrefix(errOut, "produced 20000 records, 0.2 MiB in "))
	is.True(strings.HasSuffix(errOut, " records/s\n"))

	code, _, errOut = ctl.run(t, "", "consume", "numbers", "--progress")
	is.Equal(code, 0)
	is.True(strings.HasPrefix(errOut, "consumed 20000 records, 0.2 MiB in "))

	code, _, errOut = ctl.run(t, stdin, "produce", "numbers")
	is.Equal(code, 0)
	is.Equal(errOut, "") // stderr is not a terminal: no progress without --progress
}

func TestDislogctlOffsetsAndServers(t *testing.T) {
	is := is.New(t)
	ctl := newCtl(t, servertest.Start(t, ""), "alice")
	ctl.ok(t, "", "topics", "create", "orders")
	ctl.ok(t, "", "produce", "orders", "a", "b", "c")

	is.Equal(ctl.ok(t, "", "offsets", "fetch", "billing", "orders"), "group \"billing\" has committed no offset on topic \"orders\"\n")
	is.Equal(ctl.ok(t, "", "offsets", "commit", "billing", "orders", "2"), "committed offset 2 for group \"billing\" on topic \"orders\"\n")
	is.Equal(ctl.ok(t, "", "offsets", "fetch", "billing", "orders"), "2\n")
	is.Equal(ctl.ok(t, "", "offsets", "fetch", "billing", "orders", "-o", "json"), `{"group":"billing","topic":"orders","partition":0,"offset":2,"committed":true}`+"\n")
	code, _, errOut := ctl.run(t, "", "offsets", "commit", "billing", "orders", "7")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "(OutOfRange)"))

	servers := ctl.ok(t, "", "servers")
	is.True(strings.Contains(servers, "node1"))
	is.True(strings.Contains(servers, "true"))
	var list []map[string]any
	is.NoErr(json.Unmarshal([]byte(ctl.ok(t, "", "servers", "-o", "json")), &list))
	is.Equal(len(list), 1)
	is.Equal(list[0]["id"], "node1")
	is.Equal(list[0]["is_leader"], true)
}

func TestDislogctlPermissionDenied(t *testing.T) {
	is := is.New(t)
	node := servertest.Start(t, "p, alice, *, *\np, bob, orders, consume\n")
	newCtl(t, node, "alice").ok(t, "", "topics", "create", "orders")
	bob := newCtl(t, node, "bob")
	code, _, errOut := bob.run(t, "", "produce", "orders", "x")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "(PermissionDenied)"))
	is.True(strings.Contains(errOut, "bob"))
	is.Equal(bob.ok(t, "", "consume", "orders"), "")
}

func TestDislogctlTailFollows(t *testing.T) {
	is := is.New(t)
	node := servertest.Start(t, "")
	ctl := newCtl(t, node, "alice")
	ctl.ok(t, "", "topics", "create", "orders")
	ctl.ok(t, "", "produce", "orders", "old", "last")
	c := node.Client(t, "alice")

	ctx := ctxT(t)
	cmd := ctl.command(ctx, "", "tail", "-f", "-n", "1", "orders")
	stdout, err := cmd.StdoutPipe()
	is.NoErr(err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	is.NoErr(cmd.Start())
	lines := bufio.NewScanner(stdout)
	is.True(lines.Scan())
	is.Equal(lines.Text(), "last")
	_, err = c.Produce(ctx, "orders", client.Record{Value: []byte("new")})
	is.NoErr(err)
	is.True(lines.Scan())
	is.Equal(lines.Text(), "new")

	// Interrupting is how tail -f ends: not an error.
	is.NoErr(cmd.Process.Signal(syscall.SIGINT))
	_, _ = io.Copy(io.Discard, stdout)
	is.NoErr(cmd.Wait())
	is.Equal(stderr.String(), "")
}

// TestDislogctlFindsTheDevNodeCertificates runs the real dislog binary in dev mode and dislogctl
// with no TLS flags or variables in the same directory: it must find ./dislog-data/pki/dev.
func TestDislogctlFindsTheDevNodeCertificates(t *testing.T) {
	is := is.New(t)
	ctl := &ctlEnv{bin: build(t, "client/cmd/dislogctl"), dir: t.TempDir()}
	dislog := build(t, "server/cmd/dislog")

	ctx, cancel := context.WithCancel(ctxT(t))
	node := exec.CommandContext(ctx, dislog, "--addr", "127.0.0.1:0", "--admin-addr", "")
	node.Dir = ctl.dir
	node.Cancel = func() error { return node.Process.Signal(syscall.SIGTERM) }
	node.WaitDelay = 10 * time.Second
	banner, err := node.StdoutPipe()
	is.NoErr(err)
	is.NoErr(node.Start())
	t.Cleanup(func() {
		cancel()
		_ = node.Wait()
	})
	lines := bufio.NewScanner(banner)
	is.True(lines.Scan())
	addr, ok := strings.CutPrefix(lines.Text(), "dislog: serving on ")
	is.True(ok)
	go func() { _, _ = io.Copy(io.Discard, banner) }()

	ctl.env = []string{"DISLOG_ADDR=" + addr}
	is.Equal(ctl.ok(t, "", "topics", "create", "hello"), "created topic \"hello\" (1 partition, 1 replica each; retention: keep all)\n")
	is.Equal(ctl.ok(t, "hello\nworld\n", "produce", "hello"), "produced 2 records to \"hello\", offsets 0 to 1\n")
	is.Equal(ctl.ok(t, "", "consume", "hello"), "hello\nworld\n")

	// In another directory there is no dev node to find, and the error says what to do.
	devDir := ctl.dir
	ctl.dir = t.TempDir()
	code, _, errOut := ctl.run(t, "", "topics", "list")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "no dev client certificate"))
	is.True(strings.Contains(errOut, "Start a dev node in this directory with `dislog`"))
	// --data-dir points it back at the node's files.
	is.True(strings.Contains(ctl.ok(t, "", "topics", "list", "--data-dir", filepath.Join(devDir, "dislog-data")), "hello"))
}
