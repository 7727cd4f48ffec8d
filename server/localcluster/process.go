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
	"slices"
	"strings"
	"sync"
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

// DislogPackage is the import path of the dislog command.
const DislogPackage = "github.com/dislog/dislog/server/cmd/dislog"

// BuildDislog builds the dislog command into dir, with the build tags given, and returns the
// binary's path. It runs go build in the current directory, which must be in a module that requires
// the server module (or in the server module, or the Dislog workspace), and builds the dislog of
// that module's build list: the working tree in the workspace, the required version outside it.
// (The tools module lists the command in a tool directive, so its go.sum has what the build needs.)
func BuildDislog(ctx context.Context, dir string, tags ...string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(dir, "dislog"))
	if err != nil {
		return "", fmt.Errorf("localcluster: %w", err)
	}
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, DislogPackage)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("localcluster: go build %s: %w\n%s", DislogPackage, err, out)
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
	// IPs, if set, gives node i the loopback address IPs[i] of its own: it listens there (gRPC and
	// Serf) and dials its peers from there (--peer-source-ip), so that whoever it connects to can
	// tell it by its source address. Its certificate names it too. Default: every node on
	// 127.0.0.1, its peer connections from wherever the operating system chooses.
	IPs []string
	// Advertise, if set, is called for each node before it starts, with the node's index and the
	// address it will listen on; the node advertises the address Advertise returns, to its peers
	// (Raft dials it) and to clients, for example that of a proxy in front of it. The cluster's
	// Addrs are the advertised addresses.
	Advertise func(node int, listenAddr string) (string, error)
	// Args are more flags for every node, such as Raft timings.
	Args []string
}

// StartProcesses runs opts.Nodes dislog processes, the first with --bootstrap and the others
// joining it, and waits until they have a leader. Each listens on a port chosen once, which it
// keeps across Restart. Close stops them (SIGTERM, then SIGKILL after 15 s).
//
// A port found free can be taken by another process before the node binds it (tests of other
// packages run at the same time); a cluster whose node finds its port taken is started again on
// other ports, up to three times.
func StartProcesses(ctx context.Context, opts Options) (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := startProcesses(ctx, opts)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return c, err
		}
	}
}

// errPortTaken is the error of a node that could not listen on the port chosen for it.
var errPortTaken = errors.New("localcluster: a port chosen for a node was taken meanwhile")

func startProcesses(ctx context.Context, opts Options) (_ *Cluster, err error) {
	if opts.Nodes < 1 {
		return nil, fmt.Errorf("localcluster: %d nodes", opts.Nodes)
	}
	if opts.IPs != nil && len(opts.IPs) != opts.Nodes {
		return nil, fmt.Errorf("localcluster: %d IPs for %d nodes", len(opts.IPs), opts.Nodes)
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
	c := &Cluster{Dir: dir, bin: opts.Bin, log: opts.Log}
	c.stop = c.stopProcesses
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	ips := opts.IPs
	if ips == nil {
		ips = slices.Repeat([]string{"127.0.0.1"}, opts.Nodes)
	}
	p, err := makePKI(dir, ips)
	if err != nil {
		return nil, err
	}
	c.ClientTLS = p.client
	c.Addrs = make([]string, opts.Nodes)
	for i := range opts.Nodes {
		listen, err := freePort(ips[i])
		if err != nil {
			return nil, err
		}
		serf, err := freePort(ips[i])
		if err != nil {
			return nil, err
		}
		c.Addrs[i] = listen
		args := []string{
			"--data-dir", filepath.Join(dir, NodeName(i)),
			"--node-id", NodeName(i),
			"--addr", listen,
			"--admin-addr", "",
			"--serf-addr", serf,
			"--tls-ca-file", p.servers[i].CAFile,
			"--tls-cert-file", p.servers[i].CertFile,
			"--tls-key-file", p.servers[i].KeyFile,
			"--policy-file", p.policy,
		}
		if opts.IPs != nil {
			args = append(args, "--peer-source-ip", ips[i])
		}
		if opts.Advertise != nil {
			if c.Addrs[i], err = opts.Advertise(i, listen); err != nil {
				return nil, err
			}
			args = append(args, "--advertise-addr", c.Addrs[i])
		}
		c.nodes = append(c.nodes, &process{name: NodeName(i), listen: listen, serf: serf, args: append(args, opts.Args...)})
	}
	serving := make(chan error, opts.Nodes)
	for i, n := range c.nodes {
		args := n.args
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.nodes[0].serf)
		}
		if err := c.start(i, args, serving); err != nil {
			return nil, err
		}
	}
	for range opts.Nodes {
		select {
		case err := <-serving:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("localcluster: waiting for the nodes to serve: %w", ctx.Err())
		}
	}
	if _, err := c.Leader(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// process is one node of a cluster of dislog processes.
type process struct {
	name   string
	listen string
	serf   string
	args   []string // without --bootstrap or --join

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been waited for
	paused bool
	stderr *lastLines // the end of its output, for errors
}

func (p *process) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

const servingPrefix = "dislog: serving on "

// start starts node i with args and sends on serving nil once its first line of output says it
// serves on its address, or why not; the rest of its output goes to the cluster's log.
func (c *Cluster) start(i int, args []string, serving chan<- error) error {
	n := c.nodes[i]
	cmd := exec.Command(c.bin, args...)
	n.stderr = &lastLines{}
	cmd.Stderr = &prefixWriter{w: io.MultiWriter(c.log, n.stderr), prefix: n.name + ": "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localcluster: start %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.paused = cmd, exited, false
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() {
			cmd.Wait()
			err := fmt.Errorf("localcluster: %s exited before serving: %s", n.name, n.stderr)
			if strings.Contains(n.stderr.String(), "address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			serving <- err
			return
		}
		switch addr, ok := strings.CutPrefix(sc.Text(), servingPrefix); {
		case !ok:
			serving <- fmt.Errorf("localcluster: %s said %q, want %q first", n.name, sc.Text(), servingPrefix+"ADDR")
		case addr != n.listen:
			serving <- fmt.Errorf("localcluster: %s serves on %s, not on the --addr %s it was given", n.name, addr, n.listen)
		default:
			serving <- nil
		}
		out := &prefixWriter{w: c.log, prefix: n.name + ": "}
		for sc.Scan() {
			fmt.Fprintln(out, sc.Text())
		}
		// The pipe is done: Wait may close it.
		cmd.Wait()
	}()
	return nil
}

// node returns process node i, which must be running unless stopped is true.
func (c *Cluster) node(i int, stopped bool) (*process, error) {
	if i < 0 || i >= len(c.nodes) {
		return nil, fmt.Errorf("localcluster: no node process %d", i)
	}
	n := c.nodes[i]
	if n.running() == stopped {
		if stopped {
			return nil, fmt.Errorf("localcluster: %s is running", n.name)
		}
		return nil, fmt.Errorf("localcluster: %s is not running", n.name)
	}
	return n, nil
}

// Kill ends node i with SIGKILL, as a crash would, and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(i, false)
	if err != nil {
		return err
	}
	if err := n.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("localcluster: kill %s: %w", n.name, err)
	}
	<-n.exited
	return nil
}

// Restart starts node i again after Kill, with its data directory, addresses and flags, joining
// the other nodes' Serf addresses; it returns once the node serves.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(i, true)
	if err != nil {
		return err
	}
	var seeds []string
	for _, o := range c.nodes {
		if o != n {
			seeds = append(seeds, o.serf)
		}
	}
	serving := make(chan error, 1)
	if err := c.start(i, append(slices.Clip(n.args), "--join", strings.Join(seeds, ",")), serving); err != nil {
		return err
	}
	select {
	case err := <-serving:
		return err
	case <-ctx.Done():
		return fmt.Errorf("localcluster: waiting for %s to serve again: %w", n.name, ctx.Err())
	}
}

// Pause stops node i with SIGSTOP: it neither runs nor answers until Resume, while its sockets
// stay open.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume continues node i, paused, with SIGCONT.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, pause bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(i, false)
	if err != nil {
		return err
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("localcluster: %s %s: %w", sig, n.name, err)
	}
	n.paused = pause
	return nil
}

// stopProcesses sends SIGTERM to every running node (after SIGCONT to a paused one) and waits for
// them, killing any still running after 15 s.
func (c *Cluster) stopProcesses() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var running []*process
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		if n.paused {
			n.cmd.Process.Signal(syscall.SIGCONT)
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
		running = append(running, n)
	}
	var errs []error
	for _, n := range running {
		select {
		case <-n.exited:
			if st := n.cmd.ProcessState; !st.Success() {
				errs = append(errs, fmt.Errorf("localcluster: %s: %s", n.name, st))
			}
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
			errs = append(errs, fmt.Errorf("localcluster: %s did not stop within 15s of SIGTERM; killed", n.name))
		}
	}
	return errors.Join(errs...)
}

// freePort returns an address of ip whose port was free a moment ago for both TCP and UDP (Serf
// needs both), for a node that keeps it across restarts.
func freePort(ip string) (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return "", fmt.Errorf("localcluster: %w", err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("localcluster: no port of %s free for both TCP and UDP", ip)
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

// lastLines keeps the last lines written to it, one line a Write (as prefixWriter writes).
type lastLines struct {
	mu    sync.Mutex
	lines []string
}

// keptLines is how many lines lastLines keeps.
const keptLines = 5

func (l *lastLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSuffix(string(b), "\n"))
	if len(l.lines) > keptLines {
		l.lines = l.lines[len(l.lines)-keptLines:]
	}
	return len(b), nil
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return "it wrote nothing"
	}
	return "its last output:\n" + strings.Join(l.lines, "\n")
}
