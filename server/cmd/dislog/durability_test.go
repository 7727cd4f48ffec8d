package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/dislog/dislog/server/localcluster"
)

// buildDislog builds this command into a temporary directory.
func buildDislog(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs dislog processes: skipped by -short")
	}
	bin, err := localcluster.BuildDislog(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// process is a dislog server running as a child process.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
}

func startProcess(t *testing.T, bin, dataDir string) *process {
	t.Helper()
	return startWith(t, bin, "--data-dir", dataDir, "--addr", "127.0.0.1:0", "--admin-addr=", "--log-level", "warn")
}

// startWith starts bin with args and waits for the line that says where it serves.
func startWith(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{logs: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stderr = p.logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "dislog: serving on "); ok {
				addrc <- a
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p.addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatalf("dislog did not start:\n%s", p.logs.String())
	}
	return p
}

func devClient(t *testing.T, dataDir, addr string) *client.Client {
	t.Helper()
	pki := filepath.Join(dataDir, "pki", "dev")
	c, err := client.Dial(addr, client.WithTLSFiles(filepath.Join(pki, "ca.pem"), filepath.Join(pki, "dev.pem"), filepath.Join(pki, "dev-key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestEveryAcknowledgedRecordSurvivesSIGKILL kills the server with SIGKILL while producers write to
// it, again and again, and checks after each restart that every record ever acknowledged is there
// at its offset, and that no record is there twice.
func TestEveryAcknowledgedRecordSurvivesSIGKILL(t *testing.T) {
	bin := buildDislog(t)
	dir := t.TempDir()
	const (
		rounds    = 6
		producers = 4
		topic     = "durable"
	)
	var mu sync.Mutex
	acked := map[uint64]string{} // offset -> value
	seq := 0

	verify := func(c *client.Client) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]uint64{}
		stored := map[uint64]string{}
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			for _, r := range resp.Records {
				v := string(r.Value)
				if first, dup := seen[v]; dup {
					t.Fatalf("record %q stored twice, at offsets %d and %d", v, first, r.Offset)
				}
				seen[v], stored[r.Offset] = r.Offset, v
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for off, v := range acked {
			if stored[off] != v {
				t.Fatalf("acknowledged record %q at offset %d: found %q", v, off, stored[off])
			}
		}
	}

	for round := range rounds {
		p := startProcess(t, bin, dir)
		c := devClient(t, dir, p.addr)
		ctx := context.Background()
		if round == 0 {
			if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{}); err != nil {
				t.Fatal(err)
			}
		}
		verify(c)

		mu.Lock()
		before := len(acked)
		mu.Unlock()
		var wg sync.WaitGroup
		for g := range producers {
			wg.Go(func() {
				for {
					n := 1 + rand.IntN(8)
					recs := make([]client.Record, n)
					mu.Lock()
					for i := range recs {
						seq++
						recs[i].Value = fmt.Appendf(nil, "r%d-g%d", seq, g)
					}
					mu.Unlock()
					base, err := c.ProduceBatch(ctx, topic, recs)
					if err != nil {
						return // the server was killed
					}
					mu.Lock()
					for i, r := range recs {
						acked[base+uint64(i)] = string(r.Value)
					}
					mu.Unlock()
				}
			})
		}
		// Kill at a random point once this round has had some acknowledgements.
		want := before + 50 + rand.IntN(400)
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		for {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d acknowledgements, want %d\n%s", round, n-before, want-before, p.logs.String())
			}
			<-tick.C
		}
		tick.Stop()
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		wg.Wait()
		c.Close()
	}
	p := startProcess(t, bin, dir)
	verify(devClient(t, dir, p.addr))
	t.Logf("%d records acknowledged over %d kills, all read back", len(acked), rounds)
}
