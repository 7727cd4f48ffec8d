// Package faultproxy puts a fault-injecting TCP proxy in front of each node of a cluster that runs
// on one machine, so that a test can partition the nodes without root, netem or iptables.
//
// Every node listens on its own loopback IP (Linux routes all of 127.0.0.0/8 to lo), dials its
// peers from that IP, and advertises the address of its proxy instead of its own, so every
// connection to a node, from a peer or a client, goes through that node's proxy. A proxy tells
// which node is calling from the connection's source IP; a connection from an IP that is no node's
// (a client on 127.0.0.1) is never blocked.
//
// Faults are links: Block(mode, Link{From: "node1", To: "node2"}) stops the connections node1 opens
// to node2's proxy. A partition is a link blocked both ways; a one-way partition is one link alone.
// At the TCP level a link is the connections its From node opens, and both directions of their
// bytes: with node1→node2 blocked, nothing node1 sends on a connection it opened to node2 arrives,
// and no answer comes back on it, while a connection node2 opens to node1 still carries node2's
// requests and node1's answers. For Raft that means a leader node1 cut from node2 one way cannot
// send node2 heartbeats or entries, yet node2 can still ask node1 for its vote and get the answer.
//
// A blocked link either refuses (Refuse: its connections are reset at once and new ones are
// accepted and reset, so the caller sees errors fast) or blackholes (Blackhole: its connections
// stay open and new ones are accepted, but no byte is forwarded either way, so the caller waits for
// its timeouts). Heal unblocks links: a blackholed connection then delivers what it held, as TCP
// retransmission would after a network heals; a refused one is gone, and the caller dials anew.
package faultproxy

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
)

// Mode is how a blocked link fails.
type Mode int

const (
	// Refuse resets the link's connections and every new one.
	Refuse Mode = iota + 1
	// Blackhole keeps the link's connections open and forwards nothing on them until healed.
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Link is the connections node From opens to node To.
type Link struct{ From, To string }

func (l Link) String() string { return l.From + "->" + l.To }

// Network is the proxies of one cluster and the links blocked between its nodes. Its methods are
// safe for concurrent use.
type Network struct {
	mu      sync.Mutex
	nodes   map[string]string // source IP → node name
	blocked map[Link]Mode
	conns   map[*conn]struct{}
	proxies []*Proxy
	// changed is closed and replaced whenever blocked changes, waking the connections that wait
	// for a link to heal.
	changed chan struct{}
}

// New returns a network with no node and nothing blocked.
func New() *Network {
	return &Network{
		nodes:   map[string]string{},
		blocked: map[Link]Mode{},
		conns:   map[*conn]struct{}{},
		changed: make(chan struct{}),
	}
}

// Block blocks links in the given mode, replacing the mode of any already blocked. A Refuse link's
// open connections are reset at once.
func (n *Network) Block(mode Mode, links ...Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range links {
		n.blocked[l] = mode
	}
	n.changedLocked()
	if mode != Refuse {
		return
	}
	for c := range n.conns {
		if slices.Contains(links, c.link) {
			c.reset()
		}
	}
}

// Heal unblocks links.
func (n *Network) Heal(links ...Link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range links {
		delete(n.blocked, l)
	}
	n.changedLocked()
}

// HealAll unblocks every link.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.blocked)
	n.changedLocked()
}

// Blocked returns the blocked links, sorted, as "from->to (mode)".
func (n *Network) Blocked() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for l, m := range n.blocked {
		out = append(out, fmt.Sprintf("%s (%s)", l, m))
	}
	slices.Sort(out)
	return out
}

func (n *Network) changedLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// state returns how link is blocked now (0: not at all) and a channel closed at the next change.
func (n *Network) state(link Link) (Mode, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked[link], n.changed
}

// Close closes every proxy and connection.
func (n *Network) Close() error {
	n.mu.Lock()
	proxies := n.proxies
	n.proxies = nil
	for c := range n.conns {
		c.reset()
	}
	n.mu.Unlock()
	var errs []string
	for _, p := range proxies {
		if err := p.close(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("faultproxy: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Listen starts the proxy of node, which dials its peers from sourceIP: it listens on listenAddr
// (port 0 picks a free one) and forwards to target, the node's own address.
func (n *Network) Listen(node, sourceIP, listenAddr, target string) (*Proxy, error) {
	if net.ParseIP(sourceIP) == nil {
		return nil, fmt.Errorf("faultproxy: node %s: source IP %q is not an IP address", node, sourceIP)
	}
	lis, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{net: n, node: node, lis: lis, target: target, done: make(chan struct{})}
	n.mu.Lock()
	if other, ok := n.nodes[sourceIP]; ok && other != node {
		n.mu.Unlock()
		lis.Close()
		return nil, fmt.Errorf("faultproxy: source IP %s is node %s's already", sourceIP, other)
	}
	n.nodes[sourceIP] = node
	n.proxies = append(n.proxies, p)
	n.mu.Unlock()
	go p.serve()
	return p, nil
}

// caller names the node whose source IP addr is, or "" for a client.
func (n *Network) caller(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[tcp.IP.String()]
}

func (n *Network) track(c *conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked[c.link] == Refuse {
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *Network) untrack(c *conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.conns, c)
}
