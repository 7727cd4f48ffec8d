package faultproxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Proxy is the listener in front of one node.
type Proxy struct {
	net    *Network
	node   string
	lis    net.Listener
	target string
	done   chan struct{}
	wg     sync.WaitGroup
}

// Addr is the address the proxy listens on, which its node advertises.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// dialTimeout bounds the dial of the node behind the proxy: a node that is paused accepts no
// connection, and one that is down refuses it.
const dialTimeout = 5 * time.Second

func (p *Proxy) serve() {
	defer close(p.done)
	for {
		c, err := p.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				p.wg.Wait()
				return
			}
			continue
		}
		p.wg.Go(func() { p.handle(c) })
	}
}

func (p *Proxy) close() error {
	err := p.lis.Close()
	<-p.done
	return err
}

// handle forwards one accepted connection to the node, as long as its link allows.
func (p *Proxy) handle(client net.Conn) {
	c := &conn{link: Link{From: p.net.caller(client.RemoteAddr()), To: p.node}, client: client, done: make(chan struct{})}
	if c.link.From == "" {
		c.link.From = clientName
	}
	if !p.net.track(c) {
		resetConn(client)
		return
	}
	defer p.net.untrack(c)
	upstream, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		resetConn(client)
		return
	}
	if !c.setUpstream(upstream) {
		resetConn(upstream)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(c, client, upstream) })
	wg.Go(func() { p.pipe(c, upstream, client) })
	wg.Wait()
	client.Close()
	upstream.Close()
}

// clientName is the From of a connection whose source IP is no node's. No link from it is ever
// blocked by the harness, which blocks links between nodes only.
const clientName = "client"

// pipe copies src to dst while c's link is not blocked: on a blackholed link it holds what it read
// until the link heals, on a refused one it resets the connection.
func (p *Proxy) pipe(c *conn, src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.await(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				c.reset()
				return
			}
		}
		if err != nil {
			if tcp, ok := dst.(*net.TCPConn); ok && !c.isReset() {
				// The other side's EOF passes on as a half close, so a connection may still
				// carry the answer to what was sent before it.
				tcp.CloseWrite()
			} else {
				c.reset()
			}
			return
		}
	}
}

// await returns true once c's link lets bytes through, false if the link refuses or c was reset.
func (p *Proxy) await(c *conn) bool {
	for {
		mode, changed := p.net.state(c.link)
		switch mode {
		case 0:
			return !c.isReset()
		case Refuse:
			c.reset()
			return false
		}
		select {
		case <-changed:
		case <-c.done:
			return false
		}
	}
}

// conn is one proxied connection.
type conn struct {
	link   Link
	client net.Conn

	mu       sync.Mutex
	upstream net.Conn
	closed   bool
	done     chan struct{} // closed by reset
}

func (c *conn) setUpstream(u net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.upstream = u
	return true
}

// reset closes both sides at once, with a TCP reset rather than an orderly close.
func (c *conn) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	resetConn(c.client)
	if c.upstream != nil {
		resetConn(c.upstream)
	}
}

func (c *conn) isReset() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// resetConn closes a TCP connection with a reset (linger 0), as a refused or cut link would.
func resetConn(c net.Conn) {
	if tcp, ok := c.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	c.Close()
}
