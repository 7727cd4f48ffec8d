package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestDislogctlWorksAgainstADevNode builds dislogctl from the client module and runs its commands
// against a dev node, with the dev client certificate it finds in the node's data directory.
func TestDislogctlWorksAgainstADevNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs dislogctl: skipped by -short")
	}
	bin := filepath.Join(t.TempDir(), "dislogctl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dislog/dislog/client/cmd/dislogctl").CombinedOutput(); err != nil {
		t.Fatalf("go build dislogctl: %v\n%s", err, out)
	}
	dir := t.TempDir()
	addr, banner, _ := startDevBanner(t, dir)
	ctl := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--addr", addr, "--data-dir", dir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dislogctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"creates a topic", "", []string{"topics", "create", "hello"}, []string{`"hello"`}},
		{"produces its arguments", "", []string{"produce", "hello", "one", "two"}, []string{"offsets 0 to 1"}},
		{"produces stdin lines", "three\nfour\n", []string{"produce", "hello"}, []string{"2 records"}},
		{"consumes from the start", "", []string{"consume", "hello"}, []string{"one\ntwo\nthree\nfour\n"}},
		{"consumes from an offset as JSON", "", []string{"consume", "hello", "--offset", "3", "-o", "json"}, []string{`"offset":3`}},
		{"lists topics", "", []string{"topics", "list"}, []string{"hello"}},
		{"describes a topic", "", []string{"topics", "describe", "hello"}, []string{"partitions:         1", "records:            4"}},
		{"commits an offset", "", []string{"offsets", "commit", "readers", "hello", "2"}, nil},
		{"fetches it", "", []string{"offsets", "fetch", "readers", "hello"}, []string{"2"}},
		{"lists the servers", "", []string{"servers"}, []string{"dev1", addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			out := ctl(tc.stdin, tc.args...)
			for _, w := range tc.want {
				is.True(strings.Contains(out, w)) // the output says what was done
			}
		})
	}

	t.Run("the dislogctl command the start-up message shows works as printed", func(t *testing.T) {
		var printed string
		for line := range strings.Lines(banner()) {
			if l := strings.TrimSpace(line); strings.HasPrefix(l, "dislogctl ") {
				printed = l
				break
			}
		}
		if printed == "" {
			t.Fatalf("the start-up message shows no dislogctl command:\n%s", banner())
		}
		// Run from another directory: the command must not depend on the node's.
		args := strings.Fields(printed)[1:]
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", printed, err, out)
		}
	})

	t.Run("tail -f prints a record produced after it started", func(t *testing.T) {
		is := is.New(t)
		tail := exec.Command(bin, "--addr", addr, "--data-dir", dir, "tail", "-f", "-n", "1", "hello")
		stdout, err := tail.StdoutPipe()
		is.NoErr(err)
		is.NoErr(tail.Start())
		// If a line never comes, killing tail ends the Scan below instead of the test's timeout.
		timer := time.AfterFunc(30*time.Second, func() { tail.Process.Kill() })
		defer timer.Stop()
		defer func() {
			tail.Process.Kill()
			tail.Wait()
		}()
		lines := bufio.NewScanner(stdout)
		is.True(lines.Scan())
		is.Equal(lines.Text(), "four") // the last record first
		ctl("", "produce", "hello", "five")
		is.True(lines.Scan())
		is.Equal(lines.Text(), "five")
	})

	t.Run("deletes the topic", func(t *testing.T) {
		ctl("", "topics", "delete", "hello")
		out := ctl("", "topics", "list")
		if strings.Contains(out, "hello") {
			t.Fatalf("topic still listed:\n%s", out)
		}
	})
}
