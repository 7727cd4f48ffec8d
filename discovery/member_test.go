package discovery_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/dislog/dislog/discovery"
	"github.com/matryer/is"
)

func TestRPCAddrFromTags(t *testing.T) {
	tests := []struct {
		name string
		tags map[string]string
		want string // "" for an error
	}{
		{"an IPv4 address", map[string]string{discovery.RPCAddrTag: "10.0.0.1:8400"}, "10.0.0.1:8400"},
		{"an IPv6 address", map[string]string{discovery.RPCAddrTag: "[::1]:8400"}, "[::1]:8400"},
		{"a host name", map[string]string{discovery.RPCAddrTag: "dislog-1.internal:8400"}, "dislog-1.internal:8400"},
		{"no tag", map[string]string{"rack": "a"}, ""},
		{"no port", map[string]string{discovery.RPCAddrTag: "10.0.0.1"}, ""},
		{"port 0", map[string]string{discovery.RPCAddrTag: "10.0.0.1:0"}, ""},
		{"a port over 65535", map[string]string{discovery.RPCAddrTag: "10.0.0.1:65536"}, ""},
		{"a named port", map[string]string{discovery.RPCAddrTag: "10.0.0.1:http"}, ""},
		{"an empty host", map[string]string{discovery.RPCAddrTag: ":8400"}, ""},
		{"a control character in the host", map[string]string{discovery.RPCAddrTag: "a\x00b:8400"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			got, err := discovery.RPCAddrFromTags(tt.tags)
			if tt.want == "" {
				is.True(err != nil)
				return
			}
			is.NoErr(err)
			is.Equal(got, tt.want)
		})
	}
}

// FuzzRPCAddrFromTags feeds tag values as they could arrive from any node on the network. An accepted
// value must be usable as a dial address: a host and a port from 1 to 65535.
func FuzzRPCAddrFromTags(f *testing.F) {
	for _, s := range []string{"10.0.0.1:8400", "[::1]:1", "host:65535", ":1", "a:0", "[::1", "x:+1", "\x00:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := discovery.RPCAddrFromTags(map[string]string{discovery.RPCAddrTag: v})
		if err != nil {
			return
		}
		if got != v {
			t.Fatalf("accepted %q as %q", v, got)
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" {
			t.Fatalf("accepted %q, which does not split into host and port: %v", v, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			t.Fatalf("accepted %q with port %q", v, port)
		}
	})
}
