package discovery

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"unicode"

	"github.com/hashicorp/serf/serf"
)

// RPCAddrTag is the tag that carries a node's Config.RPCAddr. It is part of the gossip format: nodes of
// different versions must agree on it.
const RPCAddrTag = "rpc_addr"

// maxTagsSize is memberlist's limit on a node's metadata, which is where Serf puts the encoded tags.
const maxTagsSize = 512

// Member is one node as this node currently sees it.
type Member struct {
	// ID is the member's Config.NodeName.
	ID string
	// Addr is the member's gossip address, "ip:port".
	Addr string
	// RPCAddr is the member's Config.RPCAddr, or "" if its RPCAddrTag is missing or not a host:port.
	RPCAddr string
	// Status is alive, leaving, left or failed.
	Status MemberStatus
	// Tags are the member's tags, without RPCAddrTag.
	Tags map[string]string
}

// MemberStatus is what a node believes about a member's liveness.
type MemberStatus int

const (
	// StatusUnknown is a member Serf has no status for; it is not reported in practice.
	StatusUnknown MemberStatus = iota
	// StatusAlive is a member that answers probes.
	StatusAlive
	// StatusLeaving is a member that announced it is leaving and has not gone yet.
	StatusLeaving
	// StatusLeft is a member that left gracefully. It is kept until Timings.TombstoneTimeout.
	StatusLeft
	// StatusFailed is a member that stopped answering without leaving. It is kept, and reconnects are
	// tried, until Timings.ReconnectTimeout.
	StatusFailed
)

func (s MemberStatus) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return "unknown"
	}
}

func statusFromSerf(s serf.MemberStatus) MemberStatus {
	switch s {
	case serf.StatusAlive:
		return StatusAlive
	case serf.StatusLeaving:
		return StatusLeaving
	case serf.StatusLeft:
		return StatusLeft
	case serf.StatusFailed:
		return StatusFailed
	default:
		return StatusUnknown
	}
}

// memberFromSerf converts a Serf member, whose tags came off the network from that member.
func memberFromSerf(m serf.Member) Member {
	out := Member{
		ID:     m.Name,
		Status: statusFromSerf(m.Status),
		Tags:   make(map[string]string, len(m.Tags)),
	}
	if ip, ok := netip.AddrFromSlice(m.Addr); ok {
		out.Addr = netip.AddrPortFrom(ip.Unmap(), m.Port).String()
	}
	out.RPCAddr, _ = RPCAddrFromTags(m.Tags)
	for k, v := range m.Tags {
		if k != RPCAddrTag {
			out.Tags[k] = v
		}
	}
	return out
}

// RPCAddrFromTags returns the RPC address a member advertised in its tags. The tags come from the
// network, so the value is checked: it must be a host:port with a non-empty printable host and a port
// from 1 to 65535.
func RPCAddrFromTags(tags map[string]string) (string, error) {
	v, ok := tags[RPCAddrTag]
	if !ok {
		return "", fmt.Errorf("discovery: no %s tag", RPCAddrTag)
	}
	if err := validateRPCAddr(v); err != nil {
		return "", err
	}
	return v, nil
}

func validateRPCAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("discovery: RPC address %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("discovery: RPC address %q has no host", addr)
	}
	for _, r := range host {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("discovery: RPC address %q has a space or a control character in its host", addr)
		}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("discovery: RPC address %q has no port from 1 to 65535", addr)
	}
	return nil
}

// encodeTags returns the tags Serf gossips for a node: the user's tags plus RPCAddrTag. It rejects the
// reserved key and tags that would not fit in memberlist's metadata.
func encodeTags(user map[string]string, rpcAddr string) (map[string]string, error) {
	if _, ok := user[RPCAddrTag]; ok {
		return nil, fmt.Errorf("%w: %q is reserved for the RPC address", ErrInvalidTags, RPCAddrTag)
	}
	tags := make(map[string]string, len(user)+1)
	maps.Copy(tags, user)
	tags[RPCAddrTag] = rpcAddr
	if n := encodedTagsSize(tags); n > maxTagsSize {
		return nil, fmt.Errorf("%w: tags encode to %d bytes, more than %d", ErrInvalidTags, n, maxTagsSize)
	}
	return tags, nil
}

// encodedTagsSize is the size of Serf's tag encoding: one magic byte, then a msgpack map of raw strings
// as go-msgpack writes them with a default handle (fixraw up to 31 bytes, raw16, raw32).
func encodedTagsSize(tags map[string]string) int {
	str := func(s string) int {
		switch {
		case len(s) <= 31:
			return 1 + len(s)
		case len(s) <= 0xffff:
			return 3 + len(s)
		default:
			return 5 + len(s)
		}
	}
	n := 1
	switch {
	case len(tags) <= 15:
		n++
	case len(tags) <= 0xffff:
		n += 3
	default:
		n += 5
	}
	for k, v := range tags {
		n += str(k) + str(v)
	}
	return n
}
