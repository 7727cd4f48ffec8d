package server

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	peerv1 "github.com/dislog/dislog/server/internal/peerapi/v1"
	"github.com/matryer/is"
	"google.golang.org/grpc"
)

// Forwarded calls to other servers are dialed from the peer source address.
func TestPeerCallsComeFromTheSourceAddress(t *testing.T) {
	is := is.New(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	is.NoErr(err)
	defer target.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	p := &peerConns{tls: &tls.Config{}, dialer: net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.8")}}, conns: map[string]*grpc.ClientConn{}}
	defer p.close()
	cl, err := p.client(target.Addr().String())
	is.NoErr(err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go cl.ReadIndex(ctx, &peerv1.ReadIndexRequest{}) // fails: nothing answers TLS
	select {
	case c := <-accepted:
		defer c.Close()
		is.Equal(c.RemoteAddr().(*net.TCPAddr).IP.String(), "127.0.0.8")
	case <-ctx.Done():
		t.Fatal("no connection within 10s")
	}
}
