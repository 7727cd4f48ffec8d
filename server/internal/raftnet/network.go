package raftnet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

var (
	// ErrClosed is returned by calls on a closed Network or Transport. It is raft's own
	// ErrTransportShutdown, which raft checks for.
	ErrClosed = raft.ErrTransportShutdown
	// ErrGroupExists is returned by Transport for a group that has a transport already.
	ErrGroupExists = errors.New("raftnet: group has a transport already")
	// ErrNoGroup is the answer to a call for a group the server does not run (yet, or any more).
	ErrNoGroup = errors.New("raftnet: no such group on this server")
	// ErrTimeout is returned for a call that got no answer within the RPC timeout.
	ErrTimeout = errors.New("raftnet: rpc timed out")
)

// Options configure a Network. LocalAddr is required.
type Options struct {
	// LocalAddr is the address the other servers reach this one at, as Raft configurations name it.
	LocalAddr raft.ServerAddress
	// Timeout bounds one RPC and one dial; an InstallSnapshot gets one more Timeout per 64 MiB of
	// snapshot. Default 10 s, as NetworkTransport's.
	Timeout time.Duration
	// MaxFrameBytes bounds one frame either way; a peer that sends a larger one is disconnected.
	// Default 256 MiB.
	MaxFrameBytes int
	// Logger gets connection failures. Default: discard.
	Logger *slog.Logger
}

func (o *Options) validate() error {
	if o.LocalAddr == "" {
		return errors.New("raftnet: Options.LocalAddr is required")
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = 256 << 20
	}
	if o.Timeout < 0 || o.MaxFrameBytes < 0 {
		return fmt.Errorf("raftnet: negative Timeout %v or MaxFrameBytes %d", o.Timeout, o.MaxFrameBytes)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Network is a server's Raft traffic: the connections to and from its peers, shared by the
// transports of all its groups.
type Network struct {
	layer  raft.StreamLayer
	opts   Options
	handle *codec.MsgpackHandle

	mu      sync.Mutex
	groups  map[string]*Transport
	peers   map[raft.ServerAddress]*peer
	inbound map[net.Conn]struct{}
	closed  bool

	done chan struct{}
	wg   sync.WaitGroup
}

// New starts serving the connections layer accepts.
func New(layer raft.StreamLayer, o Options) (*Network, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	n := &Network{
		layer: layer, opts: o, handle: newHandle(),
		groups: map[string]*Transport{}, peers: map[raft.ServerAddress]*peer{}, inbound: map[net.Conn]struct{}{},
		done: make(chan struct{}),
	}
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// Transport returns a raft.Transport for group. Close it when the group's Raft node is shut down.
func (n *Network) Transport(group string) (*Transport, error) {
	if len(group) > maxGroupLength {
		return nil, fmt.Errorf("raftnet: group name of %d bytes, at most %d", len(group), maxGroupLength)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if _, ok := n.groups[group]; ok {
		return nil, fmt.Errorf("%w: %q", ErrGroupExists, group)
	}
	t := newTransport(n, group)
	n.groups[group] = t
	return t, nil
}

// Connections returns how many connections the network holds: those it dialed and those it
// accepted. It does not grow with the number of groups.
func (n *Network) Connections() (dialed, accepted int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		if p.connected() {
			dialed++
		}
	}
	return dialed, len(n.inbound)
}

// Close closes every connection and transport. Calls in flight fail with ErrClosed.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	groups := make([]*Transport, 0, len(n.groups))
	for _, t := range n.groups {
		groups = append(groups, t)
	}
	for c := range n.inbound {
		c.Close()
	}
	peers := n.peers
	n.peers = map[raft.ServerAddress]*peer{}
	n.mu.Unlock()
	for _, t := range groups {
		t.Close()
	}
	for _, p := range peers {
		p.close(ErrClosed)
	}
	err := n.layer.Close()
	n.wg.Wait()
	return err
}

func (n *Network) group(name string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.groups[name]
}

func (n *Network) forget(t *Transport) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.groups[t.group] == t {
		delete(n.groups, t.group)
	}
}

func (n *Network) accept() {
	defer n.wg.Done()
	for {
		conn, err := n.layer.Accept()
		if err != nil {
			select {
			case <-n.done:
				return
			default:
			}
			n.opts.Logger.Warn("raftnet: accept", slog.Any("err", err))
			select {
			case <-n.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			conn.Close()
			return
		}
		n.inbound[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go n.serve(conn)
	}
}

// serve answers the calls that arrive on a connection a peer dialed.
func (n *Network) serve(conn net.Conn) {
	defer n.wg.Done()
	w := newWriter(conn)
	defer func() {
		n.mu.Lock()
		delete(n.inbound, conn)
		n.mu.Unlock()
		conn.Close()
		w.close()
	}()
	r := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(n.opts.Timeout))
	var p [len(preface)]byte
	if _, err := io.ReadFull(r, p[:]); err != nil || p != preface {
		n.opts.Logger.Warn("raftnet: a connection without the preface", slog.String("remote", conn.RemoteAddr().String()), slog.Any("err", err))
		return
	}
	conn.SetReadDeadline(time.Time{})
	for {
		b, err := readFrame(r, n.opts.MaxFrameBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				n.opts.Logger.Warn("raftnet: read", slog.String("remote", conn.RemoteAddr().String()), slog.Any("err", err))
			}
			return
		}
		q, err := parseRequest(b)
		if err != nil {
			n.opts.Logger.Warn("raftnet: read", slog.String("remote", conn.RemoteAddr().String()), slog.Any("err", err))
			return
		}
		t := n.group(q.group)
		if t == nil {
			w.send(appendResponse(n.handle, q.id, nil, fmt.Errorf("%w: %q", ErrNoGroup, q.group)))
			continue
		}
		cmd, snapshot, err := decodeCommand(n.handle, q)
		if err != nil {
			n.opts.Logger.Warn("raftnet: read", slog.String("remote", conn.RemoteAddr().String()), slog.Any("err", err))
			return
		}
		t.deliver(inbound{id: q.id, cmd: cmd, snapshot: snapshot, w: w})
	}
}

// peerFor returns the connection slot for target, made on first use.
func (n *Network) peerFor(target raft.ServerAddress) (*peer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	p := n.peers[target]
	if p == nil {
		p = &peer{n: n, addr: target}
		n.peers[target] = p
	}
	return p, nil
}

// call sends one request to target and returns its answer's body.
func (n *Network) call(target raft.ServerAddress, group string, kind byte, args any, extra []byte, timeout time.Duration) ([]byte, error) {
	c, err := n.start(target, group, kind, args, extra)
	if err != nil {
		return nil, err
	}
	return c.wait(timeout)
}

// start sends one request to target without waiting for the answer.
func (n *Network) start(target raft.ServerAddress, group string, kind byte, args any, extra []byte) (*call, error) {
	p, err := n.peerFor(target)
	if err != nil {
		return nil, err
	}
	return p.start(group, kind, args, extra)
}

// writer sends frames on a connection from one goroutine, flushing when no more are waiting, so
// that frames of many groups share system calls.
type writer struct {
	frames chan []byte
	done   chan struct{}
	once   sync.Once
	failed chan struct{} // closed when a write fails
}

func newWriter(conn net.Conn) *writer {
	w := &writer{frames: make(chan []byte, 256), done: make(chan struct{}), failed: make(chan struct{})}
	go w.run(conn)
	return w
}

func (w *writer) run(conn net.Conn) {
	bw := bufio.NewWriterSize(conn, 64<<10)
	for {
		var f []byte
		select {
		case f = <-w.frames:
		case <-w.done:
			return
		}
		_, err := bw.Write(f)
		for err == nil && len(w.frames) > 0 {
			_, err = bw.Write(<-w.frames)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			close(w.failed)
			conn.Close()
			<-w.done
			return
		}
	}
}

// send queues a frame; it reports false if the connection is closed or failed.
func (w *writer) send(f []byte) bool {
	select {
	case w.frames <- f:
		return true
	case <-w.done:
		return false
	case <-w.failed:
		return false
	}
}

func (w *writer) close() { w.once.Do(func() { close(w.done) }) }
