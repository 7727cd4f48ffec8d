package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/matryer/is"
)

// testNodes are three nodes, each with its own loopback IP, an echo server and a proxy in front.
type testNodes struct {
	net     *Network
	ips     map[string]string // node → IP
	proxies map[string]*Proxy
}

func startNodes(t *testing.T) *testNodes {
	t.Helper()
	n := &testNodes{net: New(), ips: map[string]string{"a": "127.0.0.201", "b": "127.0.0.202", "c": "127.0.0.203"}, proxies: map[string]*Proxy{}}
	t.Cleanup(func() {
		if err := n.net.Close(); err != nil {
			t.Error(err)
		}
	})
	for node, ip := range n.ips {
		echo, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { echo.Close() })
		go func() {
			for {
				c, err := echo.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(c, c)
				}()
			}
		}()
		p, err := n.net.Listen(node, ip, ip+":0", echo.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		n.proxies[node] = p
	}
	return n
}

// dial connects from node from ("" for a client on 127.0.0.1) to node to's proxy.
func (n *testNodes) dial(t *testing.T, from, to string) net.Conn {
	t.Helper()
	c, err := n.tryDial(t, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *testNodes) tryDial(t *testing.T, from, to string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(n.ips[from])}
	}
	c, err := d.Dial("tcp", n.proxies[to].Addr())
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// refused checks that a new connection from from to to is reset, while dialing or at its first
// round trip, and does not just hang.
func (n *testNodes) refused(t *testing.T, from, to string) {
	t.Helper()
	c, err := n.tryDial(t, from, to)
	if err == nil {
		_, err = roundTrip(c, "refused?", 5*time.Second)
	}
	if err == nil || isTimeout(err) {
		t.Fatalf("a new connection from %s to %s: %v, want a reset", from, to, err)
	}
}

// roundTrip sends a line and reads it back within wait; it returns what it read and the error.
func roundTrip(c net.Conn, line string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// passes checks that a line goes through c and comes back.
func passes(t *testing.T, c net.Conn, line string) {
	t.Helper()
	got, err := roundTrip(c, line, 5*time.Second)
	if err != nil || got != line+"\n" {
		t.Fatalf("round trip of %q: got %q, %v", line, got, err)
	}
}

// silence is how long a test waits to see that nothing comes through a blocked link.
const silence = 300 * time.Millisecond

func TestUnblockedLinksPassAndClientsAreNeverNodes(t *testing.T) {
	n := startNodes(t)
	passes(t, n.dial(t, "a", "b"), "a to b")
	passes(t, n.dial(t, "", "b"), "client to b")
	n.net.Block(Refuse, Link{"a", "b"}, Link{"b", "a"})
	passes(t, n.dial(t, "", "b"), "a client is no node and is not blocked")
	passes(t, n.dial(t, "a", "c"), "a to c is another link")
	passes(t, n.dial(t, "c", "b"), "c to b is another link")
}

func TestRefusedLinkResetsItsConnectionsAndNewOnesUntilHealed(t *testing.T) {
	is := is.New(t)
	n := startNodes(t)
	open := n.dial(t, "a", "b")
	passes(t, open, "before")

	n.net.Block(Refuse, Link{"a", "b"})
	_, err := roundTrip(open, "cut", 5*time.Second)
	is.True(err != nil && !isTimeout(err)) // the open connection was reset, not left hanging
	n.refused(t, "a", "b")                 // a new connection is reset
	is.Equal(n.net.Blocked(), []string{"a->b (refuse)"})

	n.net.Heal(Link{"a", "b"})
	passes(t, n.dial(t, "a", "b"), "after heal")
	is.Equal(len(n.net.Blocked()), 0)
}

func TestOneWayBlockStopsOnlyTheConnectionsItsFromNodeOpens(t *testing.T) {
	n := startNodes(t)
	bToA := n.dial(t, "b", "a")
	n.net.Block(Refuse, Link{"a", "b"})
	passes(t, bToA, "b's connection to a carries b's request and a's answer")
	passes(t, n.dial(t, "b", "a"), "and so does a new one")
	n.refused(t, "a", "b")
}

func TestBlackholedLinkHoldsBytesUntilHealed(t *testing.T) {
	is := is.New(t)
	n := startNodes(t)
	open := n.dial(t, "a", "b")
	passes(t, open, "before")

	n.net.Block(Blackhole, Link{"a", "b"})
	_, err := roundTrip(open, "held", silence)
	is.True(isTimeout(err)) // nothing came back: the connection is open but silent
	fresh := n.dial(t, "a", "b")
	_, err = roundTrip(fresh, "fresh", silence)
	is.True(isTimeout(err)) // a new connection is accepted and silent too
	passes(t, n.dial(t, "b", "a"), "the other way is open")

	n.net.HealAll()
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{open, "held\n"}, {fresh, "fresh\n"}} {
		tc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := bufio.NewReader(tc.c).ReadString('\n')
		is.NoErr(err)
		is.Equal(got, tc.want) // what the link held arrives once it heals
	}
	passes(t, open, "after heal")
}

func TestRefuseAfterBlackholeResetsTheHeldConnections(t *testing.T) {
	is := is.New(t)
	n := startNodes(t)
	open := n.dial(t, "a", "b")
	n.net.Block(Blackhole, Link{"a", "b"})
	_, err := roundTrip(open, "held", silence)
	is.True(isTimeout(err))
	n.net.Block(Refuse, Link{"a", "b"})
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = bufio.NewReader(open).ReadString('\n')
	is.True(err != nil && !isTimeout(err)) // reset, not a timeout
}

func TestListenRefusesAnIPTwice(t *testing.T) {
	is := is.New(t)
	n := New()
	defer n.Close()
	_, err := n.Listen("a", "127.0.0.201", "127.0.0.201:0", "127.0.0.1:1")
	is.NoErr(err)
	_, err = n.Listen("b", "127.0.0.201", "127.0.0.201:0", "127.0.0.1:1")
	is.True(err != nil) // one node per source IP, or callers could not be told apart
	_, err = n.Listen("c", "nope", "127.0.0.1:0", "127.0.0.1:1")
	is.True(err != nil)
}
