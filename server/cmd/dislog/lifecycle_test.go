package main

import (
	"context"
	"flag"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
)

// reconnectOutages are the outages TestAProduceBegunDuringAnOutageIsAcknowledgedOnceTheServerIsBack
// takes the server down for. docs/BENCHMARKS.md measures 3s,12s,30s with
// -args -reconnect-outages=3s,12s,30s.
var reconnectOutages = flag.String("reconnect-outages", "1s,8s", "outages the reconnect test measures, comma separated")

// reconnectBound is what the reconnect test allows from the server serving again to the
// acknowledgement: the client's reconnect backoff is capped at 0.5 s (0.6 s with its jitter), and
// the rest is a TLS handshake and an fsync on a busy machine. gRPC's default backoff, which grows
// to 120 s, took 2-3 s after an 8 s outage and 12 s after a 30 s one.
const reconnectBound = 2 * time.Second

// A produce begun while the server is down is acknowledged, not failed, once the server serves
// again: the client reconnects within its backoff cap, whatever the outage lasted, and the call,
// whose deadline allows the wait, goes through.
func TestAProduceBegunDuringAnOutageIsAcknowledgedOnceTheServerIsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("stops a dislog process for seconds")
	}
	var outages []time.Duration
	for s := range strings.SplitSeq(*reconnectOutages, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("-reconnect-outages %q: %v", *reconnectOutages, err)
		}
		outages = append(outages, d)
	}
	bin := buildDislog(t)
	dir := t.TempDir()
	admin := freeAddr(t)
	args := []string{"--data-dir", dir, "--admin-addr", admin, "--log-level", "warn"}
	p := startWith(t, bin, append(args, "--addr", "127.0.0.1:0")...)
	addr := p.addr
	args = append(args, "--addr", addr)
	c := devClient(t, dir, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "outage", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	parent := t // the restarted process lives for the whole test, not one subtest
	for _, outage := range outages {
		t.Run(outage.String(), func(t *testing.T) {
			if _, err := c.Produce(ctx, "outage", client.Record{Value: []byte("before")}); err != nil {
				t.Fatalf("produce before the outage: %v", err)
			}
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			p.cmd.Wait()
			down := time.Now()
			type ack struct {
				at  time.Time
				err error
			}
			acked := make(chan ack, 1)
			// Begun during the outage, a little before the server is back, with a deadline that
			// allows the whole wait.
			time.Sleep(outage * 3 / 4) // the outage itself, not a wait for a condition
			go func() {
				callCtx, cancel := context.WithTimeout(context.Background(), outage+30*time.Second)
				defer cancel()
				_, err := c.Produce(callCtx, "outage", client.Record{Value: []byte("during")})
				acked <- ack{time.Now(), err}
			}()
			time.Sleep(time.Until(down.Add(outage)))
			p = startWith(parent, bin, args...)
			serving := time.Now()
			// Healthy as /healthz says: the server knows a leader (itself, once its election is over).
			var healthy time.Time
			for deadline := serving.Add(30 * time.Second); healthy.IsZero() && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if resp, err := http.Get("http://" + admin + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						healthy = time.Now()
					}
				}
			}
			a := <-acked
			if a.err != nil {
				t.Fatalf("the produce begun during a %s outage failed %s after the server served again: %v; want it acknowledged",
					outage, a.at.Sub(serving).Round(time.Millisecond), a.err)
			}
			took := a.at.Sub(serving)
			t.Logf("outage %s: the produce was acknowledged %s after the server served again, %s after /healthz said so",
				outage, took.Round(time.Millisecond), a.at.Sub(healthy).Round(time.Millisecond))
			if took > reconnectBound {
				t.Errorf("outage %s: the produce was acknowledged %s after the server served again; want at most %s (the reconnect backoff is capped at 0.5 s)",
					outage, took.Round(time.Millisecond), reconnectBound)
			}
		})
	}
}

// Every server of a cluster stopped at the same moment exits within its shutdown timeout, although
// none is left to commit a leadership transfer or the removal of the others (a server that became
// leader while the others left used to wait on those for ever). A server that overruns the timeout
// exits with an error, which Close reports, and logs the step it was at.
func TestAClusterStoppedAllAtOnceExitsWithinTheShutdownTimeout(t *testing.T) {
	c := startCluster(t, 3)
	// The processes also log, release and exit around the shutdown itself.
	const slack = 3 * time.Second
	start := time.Now()
	err := c.lc.Close() // SIGTERM to every node at once, then waits for each
	took := time.Since(start)
	if err != nil || took > server.DefaultShutdownTimeout+slack {
		t.Fatalf("stopping the 3 servers at once took %s: %v; want every one to exit cleanly within the shutdown timeout %s (plus %s)\n--- their log:\n%s",
			took.Round(time.Millisecond), err, server.DefaultShutdownTimeout, slack, c.logs.String())
	}
	t.Logf("the 3 servers stopped at once exited cleanly within %s", took.Round(time.Millisecond))
}

// freeAddr returns an address of 127.0.0.1 whose TCP port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
