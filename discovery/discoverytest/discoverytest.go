// Package discoverytest helps test code that uses discovery: timings fast enough for loopback clusters,
// a Handler that records what it is told, a deadline-bound wait, and a logger that shows Serf's chatter
// only when a test fails.
package discoverytest

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/discovery"
)

// Timings returns timings for clusters on loopback: a failure is detected in about half a second and a
// join spreads in a few tens of milliseconds. They are too tight for a real network.
func Timings() discovery.Timings {
	return discovery.Timings{
		GossipInterval:      20 * time.Millisecond,
		ProbeInterval:       100 * time.Millisecond,
		ProbeTimeout:        50 * time.Millisecond,
		SuspicionMult:       2,
		PushPullInterval:    500 * time.Millisecond,
		TCPTimeout:          time.Second,
		DeadNodeReclaimTime: 50 * time.Millisecond,
		ReconnectInterval:   time.Second,
		ReconnectTimeout:    time.Minute,
		TombstoneTimeout:    time.Minute,
		ReapInterval:        100 * time.Millisecond,
		BroadcastTimeout:    2 * time.Second,
		LeavePropagateDelay: 100 * time.Millisecond,
		JoinBackoffMin:      20 * time.Millisecond,
		JoinBackoffMax:      200 * time.Millisecond,
	}
}

// WaitFor polls cond every few milliseconds until it is true, and fails the test if it is still false
// after timeout. what says what was awaited, for the failure message.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		<-tick.C
	}
}

// Kind says which Handler method was called.
type Kind string

// The two kinds of Event.
const (
	Join  Kind = "join"
	Leave Kind = "leave"
)

// Event is one Handler call.
type Event struct {
	Kind    Kind
	ID      string
	RPCAddr string // for Join only
	At      time.Time
}

// Recorder is a discovery.Handler that records every call, in order.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Join records a join.
func (r *Recorder) Join(id, rpcAddr string) error {
	r.record(Event{Kind: Join, ID: id, RPCAddr: rpcAddr, At: time.Now()})
	return nil
}

// Leave records a leave.
func (r *Recorder) Leave(id string) error {
	r.record(Event{Kind: Leave, ID: id, At: time.Now()})
	return nil
}

func (r *Recorder) record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of the calls so far, in the order they were made.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Last returns the latest call about id.
func (r *Recorder) Last(id string) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range slices.Backward(r.events) {
		if e.ID == id {
			return e, true
		}
	}
	return Event{}, false
}

// Logger returns a logger that keeps every record, Serf's debug lines included, and writes them to the
// test log only if the test failed. Records logged after the test ends are kept and dropped.
func Logger(t testing.TB) *slog.Logger {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("discovery logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
