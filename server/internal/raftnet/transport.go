package raftnet

import (
	"bytes"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// maxPipeline bounds the AppendEntries a pipeline has in flight, as NetworkTransport's does.
const maxPipeline = 128

// Transport is one group's raft.Transport on a Network.
type Transport struct {
	n     *Network
	group string

	consumer chan raft.RPC

	mu        sync.Mutex
	queue     []inbound
	wake      chan struct{}
	heartbeat func(raft.RPC)
	closed    bool

	done chan struct{}
	wg   sync.WaitGroup
}

// inbound is a call that arrived for this group, waiting for its turn.
type inbound struct {
	id       uint64
	cmd      any
	snapshot []byte
	w        *writer
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

func newTransport(n *Network, group string) *Transport {
	t := &Transport{n: n, group: group, consumer: make(chan raft.RPC), wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.wg.Add(1)
	go t.dispatch()
	return t
}

// deliver queues a call for the group's Raft node, or answers a heartbeat on Raft's fast path. It
// never blocks: the connection reader that calls it serves every group.
func (t *Transport) deliver(in inbound) {
	if a, ok := in.cmd.(*raft.AppendEntriesRequest); ok && isHeartbeat(a) {
		t.mu.Lock()
		fn := t.heartbeat
		t.mu.Unlock()
		if fn != nil {
			go func() {
				resp := make(chan raft.RPCResponse, 1)
				fn(raft.RPC{Command: in.cmd, RespChan: resp})
				t.answer(in, resp)
			}()
			return
		}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		in.w.send(appendResponse(t.n.handle, in.id, nil, ErrClosed))
		return
	}
	t.queue = append(t.queue, in)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// dispatch hands queued calls to Raft one at a time, in order, and sends each answer.
func (t *Transport) dispatch() {
	defer t.wg.Done()
	for {
		t.mu.Lock()
		if len(t.queue) == 0 {
			t.mu.Unlock()
			select {
			case <-t.wake:
				continue
			case <-t.done:
				return
			}
		}
		in := t.queue[0]
		t.queue[0] = inbound{}
		t.queue = t.queue[1:]
		t.mu.Unlock()

		resp := make(chan raft.RPCResponse, 1)
		rpc := raft.RPC{Command: in.cmd, RespChan: resp}
		if in.snapshot != nil {
			rpc.Reader = bytes.NewReader(in.snapshot)
		}
		select {
		case t.consumer <- rpc:
		case <-t.done:
			in.w.send(appendResponse(t.n.handle, in.id, nil, ErrClosed))
			return
		}
		t.answer(in, resp)
	}
}

func (t *Transport) answer(in inbound, resp <-chan raft.RPCResponse) {
	select {
	case r := <-resp:
		in.w.send(appendResponse(t.n.handle, in.id, r.Response, r.Error))
	case <-t.done:
		in.w.send(appendResponse(t.n.handle, in.id, nil, ErrClosed))
	}
}

// Consumer implements raft.Transport.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumer }

// LocalAddr implements raft.Transport.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.n.opts.LocalAddr }

// SetHeartbeatHandler implements raft.Transport.
func (t *Transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	t.mu.Lock()
	t.heartbeat = cb
	t.mu.Unlock()
}

// EncodePeer implements raft.Transport.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte { return []byte(addr) }

// DecodePeer implements raft.Transport.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// AppendEntries implements raft.Transport.
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.roundTrip(target, kindAppendEntries, args, nil, resp, t.n.opts.Timeout)
}

// RequestVote implements raft.Transport.
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.roundTrip(target, kindRequestVote, args, nil, resp, t.n.opts.Timeout)
}

// RequestPreVote implements raft.WithPreVote.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.roundTrip(target, kindRequestPreVote, args, nil, resp, t.n.opts.Timeout)
}

// TimeoutNow implements raft.Transport.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.roundTrip(target, kindTimeoutNow, args, nil, resp, t.n.opts.Timeout)
}

// InstallSnapshot implements raft.Transport. The snapshot travels in one frame: Dislog's snapshots
// hold metadata, not records, so they are small; one over MaxFrameBytes fails.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	snapshot, err := io.ReadAll(io.LimitReader(data, args.Size))
	if err != nil {
		return err
	}
	timeout := t.n.opts.Timeout * time.Duration(1+args.Size/(64<<20))
	return t.roundTrip(target, kindInstallSnap, args, snapshot, resp, timeout)
}

func (t *Transport) roundTrip(target raft.ServerAddress, kind byte, args any, extra []byte, resp any, timeout time.Duration) error {
	if t.isClosed() {
		return ErrClosed
	}
	body, err := t.n.call(target, t.group, kind, args, extra, timeout)
	if err != nil {
		return err
	}
	_, err = decode(t.n.handle, body, resp)
	return err
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// AppendEntriesPipeline implements raft.Transport: up to 128 AppendEntries in flight to target,
// their answers delivered in the order they were sent.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if t.isClosed() {
		return nil, ErrClosed
	}
	p := &pipeline{t: t, target: target, inflight: make(chan *appendFuture, maxPipeline),
		consumer: make(chan raft.AppendFuture, maxPipeline), done: make(chan struct{})}
	go p.collect()
	return p, nil
}

// Close implements raft.WithClose: the group's calls in flight and queued fail, and the network
// forgets the group.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	queued := t.queue
	t.queue = nil
	t.mu.Unlock()
	t.n.forget(t)
	close(t.done)
	for _, in := range queued {
		in.w.send(appendResponse(t.n.handle, in.id, nil, ErrClosed))
	}
	t.wg.Wait()
	return nil
}

type pipeline struct {
	t        *Transport
	target   raft.ServerAddress
	inflight chan *appendFuture
	consumer chan raft.AppendFuture
	done     chan struct{}
	once     sync.Once
}

type appendFuture struct {
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
	call  *call
	err   error
}

func (f *appendFuture) Error() error                        { return f.err }
func (f *appendFuture) Start() time.Time                    { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse {
	return f.resp
}

// AppendEntries implements raft.AppendPipeline. It blocks while 128 calls are in flight.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f := &appendFuture{start: time.Now(), args: args, resp: resp}
	select {
	case <-p.done:
		return nil, raft.ErrPipelineShutdown
	default:
	}
	c, err := p.t.n.start(p.target, p.t.group, kindAppendEntries, args, nil)
	if err != nil {
		return nil, err
	}
	f.call = c
	select {
	case p.inflight <- f:
		return f, nil
	case <-p.done:
		return nil, raft.ErrPipelineShutdown
	}
}

// collect waits for each call's answer in order and hands the future to Raft.
func (p *pipeline) collect() {
	for {
		var f *appendFuture
		select {
		case f = <-p.inflight:
		case <-p.done:
			return
		}
		body, err := f.call.wait(p.t.n.opts.Timeout)
		if err == nil {
			_, err = decode(p.t.n.handle, body, f.resp)
		}
		f.err = err
		select {
		case p.consumer <- f:
		case <-p.done:
			return
		}
	}
}

// Consumer implements raft.AppendPipeline.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.consumer }

// Close implements raft.AppendPipeline.
func (p *pipeline) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
