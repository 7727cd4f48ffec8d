package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	admin := freePort(t)
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
// leader while the others left used to wait on those for ever).
func TestAClusterStoppedAllAtOnceExitsWithinTheShutdownTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of dislog processes")
	}
	c := startLocalCluster(t, 3)
	// The process also loads, logs and exits around the shutdown itself.
	const slack = 3 * time.Second
	limit := server.DefaultShutdownTimeout + slack
	start := time.Now()
	for _, nd := range c.nodes {
		if err := nd.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, len(c.nodes))
	errs := make([]error, len(c.nodes))
	for i, nd := range c.nodes {
		wg.Go(func() {
			exited := make(chan error, 1)
			go func() { exited <- nd.proc.cmd.Wait() }()
			select {
			case err := <-exited:
				took[i], errs[i] = time.Since(start), err
			case <-time.After(limit + 10*time.Second):
				took[i], errs[i] = time.Since(start), errStillRunning
				nd.proc.cmd.Process.Kill()
				<-exited
			}
		})
	}
	wg.Wait()
	for i, nd := range c.nodes {
		if took[i] > limit || errors.Is(errs[i], errStillRunning) {
			t.Errorf("%s exited %s after SIGTERM (%v); want within the shutdown timeout %s plus %s\n--- its log:\n%s",
				nd.id, took[i].Round(time.Millisecond), errs[i], server.DefaultShutdownTimeout, slack, nd.proc.logs.String())
		} else {
			t.Logf("%s exited %s after SIGTERM (%v)", nd.id, took[i].Round(time.Millisecond), describeExit(errs[i]))
			if errs[i] != nil {
				t.Logf("--- %s's log:\n%s", nd.id, nd.proc.logs.String())
			}
		}
	}
}

var errStillRunning = errors.New("still running")

func describeExit(err error) string {
	if err == nil {
		return "status 0"
	}
	return fmt.Sprint(err)
}
