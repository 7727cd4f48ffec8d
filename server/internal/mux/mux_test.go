package mux_test

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/dislog/dislog/server/internal/mux"
	"github.com/hashicorp/raft"
	"github.com/matryer/is"
)

// A Raft connection is dialed from the source address the Mux was given, so a proxy or firewall
// between servers sees which server is calling.
func TestRaftConnectionsComeFromTheSourceAddress(t *testing.T) {
	is := is.New(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer target.Close()
	own, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	m := mux.New(own, &tls.Config{}, &tls.Config{}, &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}, slog.New(slog.DiscardHandler), nil)
	defer m.Close()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	// The handshake fails (nothing answers TLS at the other end); the connection was made first.
	go m.Raft().Dial(raft.ServerAddress(target.Addr().String()), 2*time.Second)
	select {
	case c := <-accepted:
		defer c.Close()
		is.Equal(c.RemoteAddr().(*net.TCPAddr).IP.String(), "127.0.0.7")
		first := make([]byte, 1)
		_, err := io.ReadFull(c, first)
		is.NoErr(err)
		is.Equal(first[0], byte(mux.RaftMarker)) // the marker comes before TLS
	case <-time.After(10 * time.Second):
		t.Fatal("no connection within 10s")
	}
}
