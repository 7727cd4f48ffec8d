package release_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/tools/internal/release"
)

// repoRoot is the repository's root, two directories above this module's.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// consumer is a module outside the repository that uses Dislog's modules as a user would, from the
// sandbox's proxy, with GOWORK=off.
type consumer struct {
	dir string
	env []string
}

func (c *consumer) run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newModule makes a module of its own in a new directory with the program of
// testdata/consumer/<name>.
func (c *consumer) newModule(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "consumer", name, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	c.run(t, dir, "go", "mod", "init", "example.com/consumer/"+name)
	return dir
}

// TestAnOutsideModuleGetsAndInstallsTheModulesAtTheirVersions builds the module proxy of the
// working tree and, in modules outside the repository with GOWORK=off, uses each published
// surface at the version of versions.yaml: raftlog under hashicorp/raft, storelog alone, the
// client API, and the dislog and dislogctl commands installed with go install.
func TestAnOutsideModuleGetsAndInstallsTheModulesAtTheirVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds raft, pebble, gRPC and the server outside the workspace: minutes on a cold cache")
	}
	root := repoRoot(t)
	v, err := release.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	// A sandbox of its own, kept between runs so the build cache serves the third-party modules:
	// `dislog-release run tools` holds the default one while this test runs.
	sum := sha256.Sum256([]byte(root))
	s, err := v.OpenSandbox(filepath.Join(cache, "dislog-release", hex.EncodeToString(sum[:6])+"-consumer"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bin := t.TempDir()
	c := &consumer{dir: t.TempDir(), env: append(s.Env(), "GOBIN="+bin)}
	version := func(dir string) string { return release.ModulePrefix + dir + "@" + versionOf(t, v, dir) }

	t.Run("raftlog under raft.NewRaft keeps 100 entries across a restart", func(t *testing.T) {
		dir := c.newModule(t, "raftlog")
		c.run(t, dir, "go", "get", version("raftlog"))
		c.run(t, dir, "go", "mod", "tidy")
		out := c.run(t, dir, "go", "run", ".", t.TempDir())
		t.Log(strings.TrimSpace(out))
	})
	t.Run("storelog appends and reads", func(t *testing.T) {
		dir := c.newModule(t, "storelog")
		c.run(t, dir, "go", "get", version("storelog"))
		out := c.run(t, dir, "go", "run", ".", t.TempDir())
		t.Log(strings.TrimSpace(out))
	})
	clientDir := c.newModule(t, "client")
	t.Run("a program builds against the client API", func(t *testing.T) {
		c.run(t, clientDir, "go", "get", version("client"))
		c.run(t, clientDir, "go", "mod", "tidy")
		c.run(t, clientDir, "go", "build", "-o", filepath.Join(bin, "client-consumer"), ".")
	})
	t.Run("the installed dislog and dislogctl round-trip a record", func(t *testing.T) {
		c.run(t, c.dir, "go", "install", "github.com/dislog/dislog/server/cmd/dislog@"+versionOf(t, v, "server"))
		c.run(t, c.dir, "go", "install", "github.com/dislog/dislog/client/cmd/dislogctl@"+versionOf(t, v, "client"))
		data := t.TempDir()
		addr := startDislog(t, filepath.Join(bin, "dislog"), data)
		ctl := func(args ...string) string {
			return c.run(t, c.dir, append([]string{filepath.Join(bin, "dislogctl"), "--addr", addr, "--data-dir", data}, args...)...)
		}
		ctl("topics", "create", "hello")
		ctl("produce", "hello", "one", "two")
		if out := ctl("consume", "hello"); out != "one\ntwo\n" {
			t.Fatalf("dislogctl consume printed %q, want the two records", out)
		}
		pki := filepath.Join(data, "pki", "dev")
		out := c.run(t, c.dir, filepath.Join(bin, "client-consumer"), addr,
			filepath.Join(pki, "ca.pem"), filepath.Join(pki, "dev.pem"), filepath.Join(pki, "dev-key.pem"))
		t.Log(strings.TrimSpace(out))
	})
}

func versionOf(t *testing.T, v *release.Versions, dir string) string {
	t.Helper()
	m, ok := v.Module(dir)
	if !ok {
		t.Fatalf("no module %s", dir)
	}
	return m.Version
}

// startDislog starts bin in development mode on a free port of 127.0.0.1 with its data in dir,
// waits for it to say where it serves, and stops it when the test ends.
func startDislog(t *testing.T, bin, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "--data-dir", dir, "--addr", "127.0.0.1:0", "--admin-addr", "", "--node-id", "consumer")
	var logs strings.Builder
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "dislog: serving on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(60 * time.Second):
		t.Fatalf("the installed dislog did not serve within 60s")
		return ""
	}
}
