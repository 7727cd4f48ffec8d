package discovery_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dislog/dislog/discovery"
	"github.com/dislog/dislog/discovery/discoverytest"
)

// joins is a Handler that passes joins to a channel, dropping those it has no room for.
type joins chan string

func (j joins) Join(id, rpcAddr string) error {
	select {
	case j <- id + " serves RPC on " + rpcAddr:
	default:
	}
	return nil
}

func (j joins) Leave(id string) error { return nil }

// Two nodes on loopback: the second joins through the first, and each hears about the other.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	first, err := discovery.New(discovery.Config{
		NodeName: "first",
		BindAddr: "127.0.0.1:0", // port 0: the kernel picks one, Addr reports it
		RPCAddr:  "127.0.0.1:8401",
		Timings:  discoverytest.Timings(), // fast timings for loopback; the defaults suit a LAN
		Logger:   quiet,
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Close()

	heard := make(joins, 1)
	second, err := discovery.New(discovery.Config{
		NodeName:  "second",
		BindAddr:  "127.0.0.1:0",
		RPCAddr:   "127.0.0.1:8402",
		SeedAddrs: []string{first.Addr()},
		Timings:   discoverytest.Timings(),
		Logger:    quiet,
	}, heard)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close()

	fmt.Println(<-heard)
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(first.Members()) < 2 {
		select {
		case <-deadline:
			fmt.Println("the first node never saw the second")
			return
		case <-tick.C:
		}
	}
	for _, m := range first.Members() {
		fmt.Println(m.ID, m.RPCAddr, m.Status)
	}
	// Output:
	// first serves RPC on 127.0.0.1:8401
	// first 127.0.0.1:8401 alive
	// second 127.0.0.1:8402 alive
}
