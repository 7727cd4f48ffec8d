package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/devca"
	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/server"
)

// ClientName is the common name of the client certificate a cluster issues; its policy allows it
// everything.
const ClientName = "bench"

// policy lets the bench client do everything and servers replicate.
const policy = "p, " + ClientName + ", *, *\np, role:server, *, replicate\n"

// Cluster is a running cluster on loopback.
type Cluster struct {
	// Addrs are the addresses clients dial, node i's at i: the nodes' gRPC addresses, or the ones
	// they advertise (Options.Advertise).
	Addrs []string
	// ClientTLS are the files of the client certificate ClientName.
	ClientTLS authz.TLSOptions
	// Dir holds the certificates and every node's data; Close removes it.
	Dir string

	stop func() error

	// The nodes of a cluster of processes: mu guards their processes, which Kill, Restart, Pause
	// and Resume change.
	bin   string
	log   io.Writer
	mu    sync.Mutex
	nodes []*process
}

// pki is what a cluster's nodes and client are given.
type pki struct {
	servers []authz.TLSOptions
	client  authz.TLSOptions
	policy  string
}

// NodeName is the node id and certificate name of the i-th node, from 0.
func NodeName(i int) string { return fmt.Sprintf("node%d", i+1) }

// makePKI writes into dir a CA, a server certificate for each node, which names its IP (ips[i]),
// the client certificate and the policy.
func makePKI(dir string, ips []string) (pki, error) {
	var p pki
	ca, err := devca.New(devca.CAName)
	if err != nil {
		return p, err
	}
	write := func(name string, role authz.Role, hosts []string) (authz.TLSOptions, error) {
		certPEM, keyPEM, err := ca.Issue(devca.Request{CommonName: name, Role: role, Hosts: hosts})
		if err != nil {
			return authz.TLSOptions{}, err
		}
		d := filepath.Join(dir, "pki", name)
		files := authz.TLSOptions{
			CAFile:   filepath.Join(d, "ca.pem"),
			CertFile: filepath.Join(d, name+".pem"),
			KeyFile:  filepath.Join(d, name+"-key.pem"),
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return files, fmt.Errorf("localcluster: %w", err)
		}
		for path, data := range map[string][]byte{files.CAFile: ca.CertPEM(), files.CertFile: certPEM, files.KeyFile: keyPEM} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				return files, fmt.Errorf("localcluster: %w", err)
			}
		}
		return files, nil
	}
	for i, ip := range ips {
		files, err := write(NodeName(i), authz.RoleServer, slices.Compact([]string{"127.0.0.1", ip, "localhost"}))
		if err != nil {
			return p, err
		}
		p.servers = append(p.servers, files)
	}
	if p.client, err = write(ClientName, authz.RoleClient, nil); err != nil {
		return p, err
	}
	p.policy = filepath.Join(dir, "pki", "policy.csv")
	if err := os.WriteFile(p.policy, []byte(policy), 0o644); err != nil {
		return p, fmt.Errorf("localcluster: %w", err)
	}
	return p, nil
}

// StartInProcess starts one node in this process, on a free port of 127.0.0.1, with its
// certificates and data in a new temporary directory.
func StartInProcess() (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "dislog-cluster-")
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	p, err := makePKI(dir, []string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	srv, err := server.New(
		server.WithDataDir(filepath.Join(dir, NodeName(0))),
		server.WithListenAddr("127.0.0.1:0"),
		server.WithAdminAddr(""),
		server.WithNodeID(NodeName(0)),
		server.WithTLS(p.servers[0]),
		server.WithPolicyFile(p.policy),
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return &Cluster{
		Addrs:     []string{srv.Addr()},
		ClientTLS: p.client,
		Dir:       dir,
		stop: func() error {
			cancel()
			return <-done
		},
	}, nil
}

// Dial returns a client of the node at addr with the cluster's client certificate.
func (c *Cluster) Dial(addr string, opts ...client.Option) (*client.Client, error) {
	f := c.ClientTLS
	return client.Dial(addr, append([]client.Option{client.WithTLSFiles(f.CAFile, f.CertFile, f.KeyFile)}, opts...)...)
}

// Leader waits until a node names a leader and every node is in the cluster, and returns the
// leader's address. It gives up when ctx ends.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	clients := make([]*client.Client, len(c.Addrs))
	for i, addr := range c.Addrs {
		cl, err := c.Dial(addr)
		if err != nil {
			return "", err
		}
		defer cl.Close()
		clients[i] = cl
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		for _, cl := range clients {
			servers, err := cl.GetServers(ctx)
			if err != nil {
				last = err
				continue
			}
			for _, s := range servers {
				if s.IsLeader && len(servers) == len(c.Addrs) {
					return s.RPCAddr, nil
				}
			}
			last = fmt.Errorf("%d of %d servers in the cluster, none leads", len(servers), len(c.Addrs))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localcluster: no leader: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// Close stops the nodes and removes the cluster's directory.
func (c *Cluster) Close() error {
	err := c.stop()
	return errors.Join(err, os.RemoveAll(c.Dir))
}
