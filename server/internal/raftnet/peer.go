package raftnet

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// peer is this server's outgoing connection to one other server, dialed on first use and again
// after it fails.
type peer struct {
	n    *Network
	addr raft.ServerAddress

	mu      sync.Mutex
	conn    *clientConn
	dialing chan struct{} // closed when the dial in progress ends
}

func (p *peer) connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil
}

// current returns a live connection, dialing one if there is none; one dial at a time.
func (p *peer) current() (*clientConn, error) {
	for {
		p.mu.Lock()
		if p.conn != nil {
			c := p.conn
			p.mu.Unlock()
			return c, nil
		}
		if wait := p.dialing; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-p.n.done:
				return nil, ErrClosed
			}
		}
		p.dialing = make(chan struct{})
		p.mu.Unlock()

		c, err := p.dial()
		p.mu.Lock()
		close(p.dialing)
		p.dialing = nil
		if err == nil {
			p.conn = c
		}
		p.mu.Unlock()
		return c, err
	}
}

func (p *peer) dial() (*clientConn, error) {
	conn, err := p.n.layer.Dial(p.addr, p.n.opts.Timeout)
	if err != nil {
		return nil, fmt.Errorf("raftnet: dial %s: %w", p.addr, err)
	}
	conn.SetWriteDeadline(time.Now().Add(p.n.opts.Timeout))
	if _, err := conn.Write(preface[:]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raftnet: dial %s: %w", p.addr, err)
	}
	conn.SetWriteDeadline(time.Time{})
	c := &clientConn{p: p, conn: conn, w: newWriter(conn), pending: map[uint64]*call{}}
	go c.read()
	return c, nil
}

// drop forgets c if it is still the peer's connection, so that the next call dials again.
func (p *peer) drop(c *clientConn) {
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
}

func (p *peer) close(err error) {
	p.mu.Lock()
	c := p.conn
	p.conn = nil
	p.mu.Unlock()
	if c != nil {
		c.fail(err)
	}
}

func (p *peer) start(group string, kind byte, args any, extra []byte) (*call, error) {
	c, err := p.current()
	if err != nil {
		return nil, err
	}
	return c.start(group, kind, args, extra)
}

// clientConn is one dialed connection: calls go out through its writer, answers come back on its
// reader and are matched to their calls by id.
type clientConn struct {
	p    *peer
	conn net.Conn
	w    *writer

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*call
	err     error // set once the connection failed

	// heard counts the frames read, so that a call that timed out can tell a slow peer from a
	// dead connection.
	heard atomic.Uint64
}

// call is one request waiting for its answer.
type call struct {
	c    *clientConn
	id   uint64
	sent uint64 // c.heard when the call was sent
	done chan struct{}
	resp response
	err  error
}

func (c *clientConn) start(group string, kind byte, args any, extra []byte) (*call, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.nextID++
	k := &call{c: c, id: c.nextID, sent: c.heard.Load(), done: make(chan struct{})}
	c.pending[k.id] = k
	c.mu.Unlock()
	frame, err := appendRequest(c.p.n.handle, k.id, kind, group, args, extra)
	if err == nil && !c.w.send(frame) {
		err = fmt.Errorf("raftnet: send to %s: connection closed", c.p.addr)
	}
	if err != nil {
		c.forget(k)
		return nil, err
	}
	return k, nil
}

func (c *clientConn) forget(k *call) {
	c.mu.Lock()
	delete(c.pending, k.id)
	c.mu.Unlock()
}

func (c *clientConn) read() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		b, err := readFrame(r, c.p.n.opts.MaxFrameBytes)
		if err == nil {
			var resp response
			if resp, err = parseResponse(b); err == nil {
				c.heard.Add(1)
				c.mu.Lock()
				k := c.pending[resp.id]
				delete(c.pending, resp.id)
				c.mu.Unlock()
				if k != nil { // nil: an answer after its call timed out
					k.resp = resp
					close(k.done)
				}
				continue
			}
		}
		c.fail(fmt.Errorf("raftnet: connection to %s: %w", c.p.addr, err))
		return
	}
}

// fail ends the connection: every pending call fails with err, and the peer dials again.
func (c *clientConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.p.drop(c)
	c.conn.Close()
	c.w.close()
	for _, k := range pending {
		k.err = err
		close(k.done)
	}
	if !errors.Is(err, ErrClosed) {
		c.p.n.opts.Logger.Debug("raftnet: connection lost", slog.String("peer", string(c.p.addr)), slog.Any("err", err))
	}
}

// wait returns the answer's body, or the remote error, or ErrTimeout. A connection that answered
// nothing at all while the call waited is dropped, so that the next call dials again.
func (k *call) wait(timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-k.done:
	case <-t.C:
		k.c.forget(k)
		if k.c.heard.Load() == k.sent {
			k.c.fail(fmt.Errorf("raftnet: connection to %s: no answer in %v", k.c.p.addr, timeout))
		}
		return nil, fmt.Errorf("%w: %s after %v", ErrTimeout, k.c.p.addr, timeout)
	case <-k.c.p.n.done:
		return nil, ErrClosed
	}
	if k.err != nil {
		return nil, k.err
	}
	if k.resp.status != statusOK {
		return nil, remoteError(k.resp.body)
	}
	return k.resp.body, nil
}

// remoteError is an error the other server answered with; raft logs it and retries.
type remoteError string

func (e remoteError) Error() string { return string(e) }
