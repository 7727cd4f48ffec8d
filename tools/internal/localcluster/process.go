package localcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// ErrNoReplication is returned by CheckReplicationFlags and StartProcesses when the dislog binary
// lacks the flags that start a replicated cluster (issue 7).
var ErrNoReplication = errors.New("localcluster: this dislog binary cannot start a replicated cluster")

// ReplicationFlags are the flags of the dislog command that StartProcesses uses to form a cluster:
// one node bootstraps, the others join its Serf address.
var ReplicationFlags = []string{"--bootstrap", "--join", "--serf-addr", "--node-id"}

// CheckReplicationFlags runs bin --help and fails with ErrNoReplication, naming the missing flags,
// unless it lists every one of ReplicationFlags.
func CheckReplicationFlags(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("localcluster: %s --help: %w\n%s", bin, err, out)
	}
	var missing []string
	for _, f := range ReplicationFlags {
		if !regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(f) + `[\s=[]`).Match(out) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s has no %s flag (the replicated server of issue 7 is not in it)",
			ErrNoReplication, bin, strings.Join(missing, ", "))
	}
	return nil
}

// BuildDislog builds the dislog command into dir and returns the binary's path. It runs go build
// in the current directory, which must be inside the Dislog repository (or a module that requires
// the server module).
func BuildDislog(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "dislog")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/dislog/dislog/server/cmd/dislog").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("localcluster: go build dislog (run inside the Dislog repository, or give the binary): %w\n%s", err, out)
	}
	return bin, nil
}

// Options configures StartProcesses.
type Options struct {
	// Bin is the dislog binary. Required.
	Bin string
	// Nodes is the number of nodes, 3 or 5 in practice. Required.
	Nodes int
	// Log receives the nodes' output, each line prefixed with the node's name; it must be safe for
	// concurrent use (os.Stderr is). Default: discard.
	Log io.Writer
	// StartTimeout bounds how long the cluster may take to serve and elect a leader. Default 60s.
	StartTimeout time.Duration
}

// StartProcesses runs opts.Nodes dislog processes on 127.0.0.1, the first with --bootstrap and the
// others joining it, and waits until they have a leader. Close stops them (SIGTERM, then SIGKILL
// after 15 s).
func StartProcesses(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Nodes < 1 {
		return nil, fmt.Errorf("localcluster: %d nodes", opts.Nodes)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := CheckReplicationFlags(ctx, opts.Bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dislog-cluster-")
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	c := &Cluster{Dir: dir}
	var procs []*exec.Cmd
	c.stop = func() error { return stopAll(procs) }
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	p, err := makePKI(dir, opts.Nodes)
	if err != nil {
		return nil, err
	}
	c.ClientTLS = p.client
	serfPorts, err := freePorts(opts.Nodes)
	if err != nil {
		return nil, err
	}
	serving := make(chan servingLine, opts.Nodes)
	for i := range opts.Nodes {
		args := []string{
			"--data-dir", filepath.Join(dir, nodeName(i)),
			"--node-id", nodeName(i),
			"--addr", "127.0.0.1:0",
			"--admin-addr", "",
			"--serf-addr", fmt.Sprintf("127.0.0.1:%d", serfPorts[i]),
			"--tls-ca-file", p.servers[i].CAFile,
			"--tls-cert-file", p.servers[i].CertFile,
			"--tls-key-file", p.servers[i].KeyFile,
			"--policy-file", p.policy,
		}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", fmt.Sprintf("127.0.0.1:%d", serfPorts[0]))
		}
		cmd, err := startNode(opts.Bin, nodeName(i), i, args, opts.Log, serving)
		if err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
	}
	c.Addrs = make([]string, opts.Nodes)
	for range opts.Nodes {
		select {
		case s := <-serving:
			if s.err != nil {
				return nil, s.err
			}
			c.Addrs[s.node] = s.addr
		case <-ctx.Done():
			return nil, fmt.Errorf("localcluster: waiting for the nodes to serve: %w", ctx.Err())
		}
	}
	if _, err := c.Leader(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// servingLine is what a node's first line of output said: the address it serves on.
type servingLine struct {
	node int
	addr string
	err  error
}

const servingPrefix = "dislog: serving on "

// startNode starts one dislog process and sends on serving the address its first line of output
// names; the rest of its output goes to log.
func startNode(bin, name string, node int, args []string, log io.Writer, serving chan<- servingLine) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &prefixWriter{w: log, prefix: name + ": "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("localcluster: start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() {
			serving <- servingLine{node: node, err: fmt.Errorf("localcluster: %s exited before serving (its output went to the log)", name)}
			return
		}
		addr, ok := strings.CutPrefix(sc.Text(), servingPrefix)
		if !ok {
			serving <- servingLine{node: node, err: fmt.Errorf("localcluster: %s said %q, want %q first", name, sc.Text(), servingPrefix+"ADDR")}
		} else {
			serving <- servingLine{node: node, addr: addr}
		}
		out := &prefixWriter{w: log, prefix: name + ": "}
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
		}
	}()
	return cmd, nil
}

// stopAll sends SIGTERM to every process and waits for them, killing any still running after 15 s.
func stopAll(procs []*exec.Cmd) error {
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	var errs []error
	for _, p := range procs {
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("localcluster: %s: %w", p.Args[0], err))
			}
		case <-time.After(15 * time.Second):
			p.Process.Kill()
			<-done
			errs = append(errs, fmt.Errorf("localcluster: pid %d did not stop within 15s of SIGTERM; killed", p.Process.Pid))
		}
	}
	return errors.Join(errs...)
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lis []net.Listener
	defer func() {
		for _, l := range lis {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		lis = append(lis, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i]); err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
}
