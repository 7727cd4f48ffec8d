// Package mux serves gRPC and Raft on one TCP port. A Raft connection starts with the byte
// RaftMarker and then runs TLS between two server certificates; anything else (a TLS ClientHello
// starts with 0x16) is handed to gRPC as it came.
package mux

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/hashicorp/raft"
)

// RaftMarker is the first byte a Raft connection sends. It is part of the wire protocol.
const RaftMarker byte = 0x01

// handshakeTimeout bounds how long a new connection may take to send its first byte and, for Raft,
// to finish its TLS handshake.
const handshakeTimeout = 10 * time.Second

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("mux: closed")

// ErrNotServer is why a Raft connection whose certificate is not a server's is refused.
var ErrNotServer = errors.New("mux: a Raft connection needs a server certificate")

// Mux splits one listener into a gRPC listener and a Raft stream layer.
type Mux struct {
	lis     net.Listener
	server  *tls.Config // accepts Raft connections
	peer    *tls.Config // dials Raft connections
	dialer  net.Dialer  // dials Raft connections, from the source address New was given
	log     *slog.Logger
	refused Refused
	grpc    chan net.Conn
	raft    chan net.Conn
	done    chan struct{}
	once    sync.Once
	// mu orders serving.Add after Accept against Close's serving.Wait: a WaitGroup must not be
	// added to from zero while it is waited on.
	mu      sync.Mutex
	closing bool
	serving sync.WaitGroup
}

// Refused is told of each Raft connection refused: the peer's address, its certificate's subject
// if known, and the error, which refusal.Classify reads. It is for counting and logging.
type Refused func(remote, subject string, err error)

// New returns a Mux over lis. server is the TLS configuration Raft connections are accepted with
// (authz.ServerTLSConfig; only server certificates get through), peer the one they are dialed with
// (authz.PeerTLSConfig). source, when not nil, is the local address Raft connections are dialed
// from; nil lets the operating system choose. refused, if not nil, is told of every Raft
// connection refused.
func New(lis net.Listener, server, peer *tls.Config, source net.Addr, log *slog.Logger, refused Refused) *Mux {
	if refused == nil {
		refused = func(remote, subject string, err error) {
			log.Warn("refused a Raft connection", slog.String("remote", remote), slog.String("subject", subject), slog.Any("error", err))
		}
	}
	return &Mux{
		lis: lis, server: server, peer: peer, dialer: net.Dialer{LocalAddr: source}, log: log, refused: refused,
		grpc: make(chan net.Conn), raft: make(chan net.Conn), done: make(chan struct{}),
	}
}

// Serve accepts connections until Close.
func (m *Mux) Serve() error {
	for {
		conn, err := m.lis.Accept()
		if err != nil {
			select {
			case <-m.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mux: accept: %w", err)
		}
		m.mu.Lock()
		if m.closing {
			m.mu.Unlock()
			conn.Close()
			return nil
		}
		m.serving.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.serving.Done()
			m.route(conn)
		}()
	}
}

// route reads a connection's first byte and hands it on.
func (m *Mux) route(conn net.Conn) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	r := bufio.NewReaderSize(conn, 1)
	first, err := r.Peek(1)
	if err != nil {
		conn.Close()
		return
	}
	if first[0] != RaftMarker {
		conn.SetDeadline(time.Time{})
		m.hand(m.grpc, &peekedConn{Conn: conn, r: r})
		return
	}
	r.Discard(1)
	tc := tls.Server(&peekedConn{Conn: conn, r: r}, m.server)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		m.refused(conn.RemoteAddr().String(), "", err)
		conn.Close()
		return
	}
	sub, err := authz.SubjectFromState(tc.ConnectionState())
	if err != nil || sub.Role != authz.RoleServer {
		if err == nil {
			err = ErrNotServer
		}
		m.refused(conn.RemoteAddr().String(), sub.Name, err)
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	m.hand(m.raft, tc)
}

func (m *Mux) hand(ch chan net.Conn, conn net.Conn) {
	select {
	case ch <- conn:
	case <-m.done:
		conn.Close()
	}
}

// Close stops accepting; connections already handed on are their owners' to close.
func (m *Mux) Close() error {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.once.Do(func() { close(m.done) })
	err := m.lis.Close()
	m.serving.Wait()
	return err
}

// GRPC is the listener gRPC serves.
func (m *Mux) GRPC() net.Listener { l := newListener(m, m.grpc); return &l }

// Raft is the stream layer of Raft's network transport.
func (m *Mux) Raft() raft.StreamLayer { return &streamLayer{newListener(m, m.raft)} }

type listener struct {
	m      *Mux
	ch     chan net.Conn
	closed chan struct{}
	once   *sync.Once
}

func newListener(m *Mux, ch chan net.Conn) listener {
	return listener{m: m, ch: ch, closed: make(chan struct{}), once: &sync.Once{}}
}

func (l listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, ErrClosed
	case <-l.m.done:
		return nil, ErrClosed
	}
}

// Close makes Accept return; the port stays open until Mux.Close, and connections routed to this
// listener meanwhile wait for the Mux to close.
func (l listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l listener) Addr() net.Addr { return l.m.lis.Addr() }

type streamLayer struct{ listener }

// Dial opens a Raft connection to another server: the marker, then TLS with this server's
// certificate, accepting only a server certificate at the other end.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("mux: dial %s: %w", address, err)
	}
	d := s.m.dialer
	d.Timeout = timeout
	conn, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	if _, err := conn.Write([]byte{RaftMarker}); err != nil {
		conn.Close()
		return nil, err
	}
	conf := s.m.peer.Clone()
	conf.ServerName = host
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("mux: dial %s: %w", address, err)
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

// peekedConn reads through the reader that peeked at its first byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
