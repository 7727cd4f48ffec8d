package deploytest

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	dislogv1 "github.com/dislog/dislog/client/api/v1"
	"github.com/matryer/is"
	"google.golang.org/grpc"
)

const topic = "deploytest"

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ack is one acknowledged record.
type ack struct {
	offset uint64
	value  string
	at     time.Time
}

// producer writes records without pause, one at a time, each with the client's idempotent
// producer id and sequence, and notes every acknowledgement and every failure.
type producer struct {
	c    *client.Client
	stop context.CancelFunc
	done chan struct{}

	mu       sync.Mutex
	acks     []ack
	failures []string
}

func startProducer(c *client.Client) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{c: c, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for n := 0; ctx.Err() == nil; n++ {
			value := fmt.Sprintf("record-%07d", n)
			callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			off, err := c.Produce(callCtx, topic, client.Record{Value: []byte(value)})
			cancel()
			p.mu.Lock()
			if err == nil {
				p.acks = append(p.acks, ack{offset: off, value: value, at: time.Now()})
			} else if ctx.Err() == nil {
				p.failures = append(p.failures, fmt.Sprintf("%s: %s: %v", time.Now().Format(time.TimeOnly), value, err))
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// mark returns how many records and failures there are so far.
func (p *producer) mark() (acks, failures int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks), len(p.failures)
}

// since returns the failures after mark, and the longest wait between two acknowledgements
// from mark on (counting from the last acknowledgement before it): the phase's write gap.
func (p *producer) since(acksMark, failuresMark int) (failures []string, gap time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := max(acksMark, 1); i < len(p.acks); i++ {
		gap = max(gap, p.acks[i].at.Sub(p.acks[i-1].at))
	}
	return slices.Clone(p.failures[failuresMark:]), gap
}

// progressing waits until n more records are acknowledged.
func (p *producer) progressing(t *testing.T, n int, what string) {
	t.Helper()
	from, _ := p.mark()
	waitFor(t, time.Minute, fmt.Sprintf("%d more acknowledged records (%s)", n, what), func() bool {
		now, _ := p.mark()
		return now >= from+n
	})
}

// cluster is the test's view of the compose cluster.
type cluster struct {
	t       *testing.T
	p       *project
	tlsOpts client.Option
	c       *client.Client // the whole cluster, dislog:///dislog-1:7070,...
}

func (cl *cluster) dialOptions() []client.Option {
	return []client.Option{cl.tlsOpts, client.WithDialOptions(grpc.WithContextDialer(cl.p.dial))}
}

// servers asks the cluster for its servers.
func (cl *cluster) servers() ([]client.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return cl.c.GetServers(ctx)
}

// leader returns the leader's ID, or "".
func (cl *cluster) leader() string {
	servers, err := cl.servers()
	if err != nil {
		return ""
	}
	for _, s := range servers {
		if s.IsLeader {
			return s.ID
		}
	}
	return ""
}

// follower returns a server that is not the leader.
func (cl *cluster) follower() string {
	leader := ""
	waitFor(cl.t, time.Minute, "a leader", func() bool { leader = cl.leader(); return leader != "" })
	for _, s := range services {
		if s != leader {
			return s
		}
	}
	panic("unreachable")
}

// caughtUp waits until every server is a voter of the configuration with Raft's last index at
// least the leader's when the wait began, and its container is healthy.
func (cl *cluster) caughtUp(what string) {
	cl.t.Helper()
	var target uint64
	waitFor(cl.t, 2*time.Minute, "every server caught up, "+what, func() bool {
		servers, err := cl.servers()
		if err != nil || len(servers) != len(services) {
			return false
		}
		for _, s := range servers {
			if s.IsLeader && target == 0 {
				target = s.LastIndex
			}
		}
		for _, s := range servers {
			if !s.IsVoter || target == 0 || s.LastIndex < target || cl.p.health(s.ID) != "healthy" {
				return false
			}
		}
		return true
	})
}

// phase is one fault and what the producer saw meanwhile.
type phase struct {
	name     string
	gap      time.Duration
	failures []string
}

func TestAComposeClusterKeepsEveryAcknowledgedRecordThroughKillsPartitionsRestartsAndAReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("the deploy test runs a Docker cluster for minutes")
	}
	if os.Getenv("DISLOG_DEPLOY_TEST") != "1" {
		t.Skip("the deploy test runs with DISLOG_DEPLOY_TEST=1 and the images built: make test-deploy")
	}
	is := is.New(t)
	p := newProject(t)

	// One command brings the cluster up.
	started := time.Now()
	p.must("up", "-d")
	pki := t.TempDir()
	ca := p.pkiFile(pki, "/pki/admin/ca.pem")
	cert := p.pkiFile(pki, "/pki/admin/admin.pem")
	key := p.pkiFile(pki, "/pki/admin/admin-key.pem")
	cl := &cluster{t: t, p: p, tlsOpts: client.WithTLSFiles(ca, cert, key)}

	// From the host through a published port, as the README shows: one server, which names the
	// leader once the three have bootstrapped.
	published, err := client.Dial("127.0.0.1:"+p.ports["dislog-1"], cl.tlsOpts)
	is.NoErr(err)
	defer published.Close()
	var firstLeader time.Duration
	waitFor(t, 2*time.Minute, "a first leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		servers, err := published.GetServers(ctx)
		for _, s := range servers {
			if err == nil && s.IsLeader && len(servers) == len(services) {
				firstLeader = time.Since(started)
				return true
			}
		}
		return false
	})
	t.Logf("time to first leader after compose up: %v", firstLeader.Round(10*time.Millisecond))

	cl.c, err = client.Dial("dislog:///"+strings.Join(hostPorts(), ","), cl.dialOptions()...)
	is.NoErr(err)
	defer cl.c.Close()
	ctx := context.Background()
	_, err = cl.c.CreateTopic(ctx, topic, client.TopicConfig{})
	is.NoErr(err)

	prod := startProducer(cl.c)
	defer func() { prod.stop(); <-prod.done }()
	prod.progressing(t, 200, "before any fault")
	var phases []phase
	run := func(name string, fault func()) {
		t.Helper()
		acks, failures := prod.mark()
		faultStarted := time.Now()
		fault()
		prod.progressing(t, 100, "after "+name)
		f, gap := prod.since(acks, failures)
		phases = append(phases, phase{name: name, gap: gap, failures: f})
		t.Logf("%s: %v, longest write gap %v, %d failed produces", name, time.Since(faultStarted).Round(time.Second), gap.Round(time.Millisecond), len(f))
	}

	run("docker kill of the leader, then docker start", func() {
		leader := ""
		waitFor(t, time.Minute, "a leader", func() bool { leader = cl.leader(); return leader != "" })
		id := p.mustContainer(leader)
		p.docker("kill", id)
		waitFor(t, time.Minute, "a new leader", func() bool { l := cl.leader(); return l != "" && l != leader })
		prod.progressing(t, 100, "under the new leader")
		p.docker("start", id)
		cl.caughtUp("after the killed leader came back")
	})

	run("a follower cut off the network for 10 s", func() {
		f := cl.follower()
		id := p.mustContainer(f)
		p.docker("network", "disconnect", p.network(), id)
		// The partition lasts 10 s, during which the majority must keep taking writes.
		cutAt := time.Now()
		for time.Since(cutAt) < 10*time.Second {
			prod.progressing(t, 10, "while "+f+" is cut off")
		}
		p.docker("network", "connect", "--alias", f, p.network(), id)
		cl.caughtUp("after " + f + " was reconnected")
	})

	run("a rolling restart, one server at a time", func() {
		for _, s := range services {
			role := "follower"
			if cl.leader() == s {
				role = "leader"
			}
			acks, failures := prod.mark()
			p.docker("restart", "--time", "30", p.mustContainer(s))
			cl.caughtUp("after restarting " + s)
			prod.progressing(t, 50, "after restarting "+s)
			f, gap := prod.since(acks, failures)
			t.Logf("  restart of %s (%s): longest write gap %v, %d failed produces", s, role, gap.Round(time.Millisecond), len(f))
		}
	})
	is.Equal(phases[len(phases)-1].failures, []string(nil)) // no produce may fail during a rolling restart

	run("a follower replaced by one with an empty volume", func() {
		f := cl.follower()
		// The procedure of docs/OPERATIONS.md: stop the server gracefully, so that it leaves and
		// the leader removes it from the configuration, then start a new one with an empty volume.
		p.must("stop", "--timeout", "30", f)
		waitFor(t, time.Minute, f+" out of the configuration", func() bool {
			servers, err := cl.servers()
			return err == nil && !slices.ContainsFunc(servers, func(s client.Server) bool { return s.ID == f })
		})
		p.must("rm", "--force", f)
		p.forget(f)
		p.docker("volume", "rm", p.name+"_data-"+strings.TrimPrefix(f, "dislog-"))
		p.must("up", "-d", f)
		cl.caughtUp("after " + f + " was replaced")
	})

	prod.stop()
	<-prod.done
	prod.mu.Lock()
	acks := slices.Clone(prod.acks)
	prod.mu.Unlock()
	t.Logf("%d records acknowledged", len(acks))

	// Every acknowledged record, once, at its offset, on every server, and the servers' logs the same.
	var first []*dislogv1.Record
	for _, s := range services {
		recs := readAll(t, cl, s)
		seen := map[string]uint64{}
		for _, r := range recs {
			if at, dup := seen[string(r.GetValue())]; dup {
				t.Fatalf("%s holds %q twice, at %d and %d", s, r.GetValue(), at, r.GetOffset())
			}
			seen[string(r.GetValue())] = r.GetOffset()
		}
		for _, a := range acks {
			at, ok := seen[a.value]
			if !ok || at != a.offset {
				t.Fatalf("%s: acknowledged %q at offset %d, read it at %d (found %v)", s, a.value, a.offset, at, ok)
			}
		}
		if first == nil {
			first = recs
			continue
		}
		is.Equal(len(recs), len(first)) // every server holds the same log
		for i := range recs {
			if recs[i].GetOffset() != first[i].GetOffset() || string(recs[i].GetValue()) != string(first[i].GetValue()) {
				t.Fatalf("%s differs from %s at offset %d", s, services[0], first[i].GetOffset())
			}
		}
	}

	var report strings.Builder
	fmt.Fprintf(&report, "time to first leader after compose up: %v\n", firstLeader.Round(10*time.Millisecond))
	for _, ph := range phases {
		fmt.Fprintf(&report, "%-50s longest write gap %8v  failed produces %d\n", ph.name, ph.gap.Round(time.Millisecond), len(ph.failures))
		for _, f := range ph.failures {
			fmt.Fprintf(&report, "    %s\n", f)
		}
	}
	fmt.Fprintf(&report, "records acknowledged and read back from each of %d servers: %d\n", len(services), len(acks))
	t.Log("\n" + report.String())
}

func hostPorts() []string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s + ":7070"
	}
	return out
}

// readAll reads the whole topic from one server's own log.
func readAll(t *testing.T, cl *cluster, service string) []*dislogv1.Record {
	t.Helper()
	// passthrough: the host cannot resolve the service's name; the test's dialer does.
	c, err := client.Dial("passthrough:///"+service+":7070", cl.dialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := c.API().ConsumeStream(ctx, &dislogv1.ConsumeStreamRequest{Topic: topic})
	if err != nil {
		t.Fatalf("read %s: %v", service, err)
	}
	var recs []*dislogv1.Record
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return recs
		}
		if err != nil {
			t.Fatalf("read %s: %v", service, err)
		}
		recs = append(recs, resp.GetRecords()...)
	}
}
