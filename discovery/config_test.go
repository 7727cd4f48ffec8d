package discovery_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/discovery/discoverytest"
	"github.com/matryer/is"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	valid := func() discovery.Config {
		return discovery.Config{
			NodeName: "n1",
			BindAddr: "127.0.0.1:0",
			RPCAddr:  "localhost:8400",
			Logger:   discoverytest.Logger(t),
		}
	}
	tests := []struct {
		name   string
		change func(*discovery.Config)
		field  string // appears in the error
	}{
		{"an empty node name", func(c *discovery.Config) { c.NodeName = "" }, "NodeName"},
		{"a bind address without a port", func(c *discovery.Config) { c.BindAddr = "127.0.0.1" }, "BindAddr"},
		{"a bind address that is a host name", func(c *discovery.Config) { c.BindAddr = "localhost:7946" }, "BindAddr"},
		{"an advertise address that is not ip:port", func(c *discovery.Config) { c.AdvertiseAddr = "example:1" }, "AdvertiseAddr"},
		{"no RPC address", func(c *discovery.Config) { c.RPCAddr = "" }, "RPCAddr"},
		{"an RPC address with port 0", func(c *discovery.Config) { c.RPCAddr = "10.0.0.1:0" }, "RPCAddr"},
		{"a seed without a port", func(c *discovery.Config) { c.SeedAddrs = []string{"10.0.0.1"} }, "SeedAddrs"},
		{"a 10-byte key", func(c *discovery.Config) { c.EncryptKey = make([]byte, 10) }, "EncryptKey"},
		{"the reserved tag", func(c *discovery.Config) { c.Tags = map[string]string{discovery.RPCAddrTag: "x:1"} }, "reserved"},
		{"tags over 512 bytes", func(c *discovery.Config) { c.Tags = map[string]string{"k": strings.Repeat("v", 500)} }, "512"},
		{"a negative probe interval", func(c *discovery.Config) { c.Timings.ProbeInterval = -1 }, "ProbeInterval"},
		{"a negative suspicion multiplier", func(c *discovery.Config) { c.Timings.SuspicionMult = -2 }, "SuspicionMult"},
		{"a backoff maximum below its minimum", func(c *discovery.Config) {
			c.Timings.JoinBackoffMin, c.Timings.JoinBackoffMax = 2e9, 1e9
		}, "JoinBackoffMax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := is.New(t)
			cfg := valid()
			tt.change(&cfg)
			m, err := discovery.New(cfg, nil)
			is.True(m == nil)
			is.True(errors.Is(err, discovery.ErrInvalidConfig))
			is.True(strings.Contains(err.Error(), tt.field))
		})
	}
}

func TestTagsThatEncodeToExactly512BytesAreAccepted(t *testing.T) {
	is := is.New(t)
	// 1 magic byte + 1 map header + "rpc_addr" (9) + "localhost:8400" (15) + "k" (2) + value (3+n) = 512.
	value := strings.Repeat("v", 512-1-1-9-15-2-3)
	cfg := discovery.Config{
		NodeName: "n1",
		BindAddr: "127.0.0.1:0",
		RPCAddr:  "localhost:8400",
		Tags:     map[string]string{"k": value},
		Timings:  discoverytest.Timings(),
		Logger:   discoverytest.Logger(t),
	}
	m, err := discovery.New(cfg, nil) // Serf itself would refuse tags over its limit
	is.NoErr(err)
	is.NoErr(m.Shutdown())

	cfg.Tags["k"] = value + "v"
	_, err = discovery.New(cfg, nil)
	is.True(errors.Is(err, discovery.ErrInvalidConfig))
}

func TestDefaultTimingsAreValidAndFillZeroFields(t *testing.T) {
	is := is.New(t)
	d := discovery.DefaultTimings()
	is.True(d.ProbeInterval > 0 && d.SuspicionMult > 0 && d.DeadNodeReclaimTime > 0)
	m, err := discovery.New(discovery.Config{
		NodeName: "n1",
		BindAddr: "127.0.0.1:0",
		RPCAddr:  "localhost:8400",
		Timings:  discovery.Timings{LeavePropagateDelay: 1}, // the rest from the defaults
		Logger:   discoverytest.Logger(t),
	}, nil)
	is.NoErr(err)
	is.NoErr(m.Close())
}
