package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dislog/dislog/tools/internal/proc"
)

// stopTimeout bounds how long a node may take to stop after SIGTERM: dislog's shutdown timeout
// (10 s by default) and some.
const stopTimeout = 30 * time.Second

// The nodes' lifecycle. A node is a localcluster process until RemoveReadd replaces it with one
// the harness runs itself (localcluster cannot start a node under a new ID); these methods work
// on either.

// kill ends node i with SIGKILL.
func (c *cluster) kill(i int) error {
	if p := c.replacement(i); p != nil {
		return p.kill()
	}
	return c.lc.Kill(i)
}

// pause stops node i with SIGSTOP; resume continues it.
func (c *cluster) pause(i int) error {
	if p := c.replacement(i); p != nil {
		return p.signal(syscall.SIGSTOP)
	}
	return c.lc.Pause(i)
}

func (c *cluster) resume(i int) error {
	if p := c.replacement(i); p != nil {
		return p.signal(syscall.SIGCONT)
	}
	return c.lc.Resume(i)
}

// terminate stops node i gracefully, with SIGTERM, and waits until it has exited.
func (c *cluster) terminate(i int) error {
	if p := c.replacement(i); p != nil {
		return p.terminate()
	}
	pid, err := proc.Find(os.Getpid(), "--data-dir", filepath.Join(c.lc.Dir, c.labels[i]))
	if err != nil {
		return err
	}
	return proc.Terminate(pid, stopTimeout)
}

// restart starts node i again, on its data, and returns once it serves. localcluster reaps a node
// stopped from outside it (terminate) a moment after the process is gone, and until then says it
// is running: Restart is tried again for up to 2 s.
func (c *cluster) restart(ctx context.Context, i int) error {
	if p := c.replacement(i); p != nil {
		return p.start(ctx)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := c.lc.Restart(ctx, i)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) replacement(i int) *process {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.replaced[i]
}

// commandLines reads every node's arguments, for RemoveReadd to start a node like them.
func (c *cluster) commandLines() ([][]string, error) {
	lines := make([][]string, c.size())
	for i, label := range c.labels {
		pid, err := proc.Find(os.Getpid(), "--data-dir", filepath.Join(c.lc.Dir, label))
		if err != nil {
			return nil, err
		}
		args, err := proc.Cmdline(pid)
		if err != nil {
			return nil, err
		}
		lines[i] = args[1:]
	}
	return lines, nil
}

// replace starts, in the slot of node i (which must be down), a new node with a new ID and an
// empty data directory, on node i's addresses and certificate, joining the others' Serf, and
// returns its ID once it serves.
func (c *cluster) replace(ctx context.Context, i int) (string, error) {
	c.mu.Lock()
	old := c.replaced[i]
	c.generation[i]++
	id := fmt.Sprintf("%s-%d", c.labels[i], c.generation[i]+1)
	var seeds []string
	for j := range c.size() {
		if j != i {
			seeds = append(seeds, flagValue(c.args[j], "--serf-addr"))
		}
	}
	c.mu.Unlock()
	if old != nil && old.running() {
		return "", fmt.Errorf("chaos: %s is running", old.id)
	}

	serf, err := freePort(nodeIP(i))
	if err != nil {
		return "", err
	}
	c.mu.RLock()
	args := slices.Clone(c.args[i])
	c.mu.RUnlock()
	args = dropFlag(args, "--bootstrap", false)
	args = dropFlag(args, "--join", true)
	args = setFlag(args, "--node-id", id)
	args = setFlag(args, "--data-dir", filepath.Join(c.lc.Dir, id))
	args = setFlag(args, "--serf-addr", serf)
	args = append(args, "--join", strings.Join(seeds, ","))
	p := &process{id: id, bin: c.cfg.Bin, args: args, log: c.cfg.Log}
	if err := p.start(ctx); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.ids[i], c.replaced[i] = id, p
	c.args[i] = args
	c.mu.Unlock()
	return id, nil
}

// flagValue returns the value that follows flag in args, or "".
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// setFlag sets the value of flag in args, appending it if missing.
func setFlag(args []string, flag, value string) []string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		args[i+1] = value
		return args
	}
	return append(args, flag, value)
}

// dropFlag removes flag, and its value if it has one, from args.
func dropFlag(args []string, flag string, hasValue bool) []string {
	out := args[:0]
	for i := 0; i < len(args); i++ {
		if args[i] == flag {
			if hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// freePort returns an address of ip whose port was free a moment ago for both TCP and UDP (Serf
// needs both).
func freePort(ip string) (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return "", fmt.Errorf("chaos: %w", err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("chaos: no port of %s free for both TCP and UDP", ip)
}

// process is a dislog process the harness runs itself.
type process struct {
	id   string
	bin  string
	args []string
	log  io.Writer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been waited for
}

// servingPrefix starts the first line a dislog process prints once it serves.
const servingPrefix = "dislog: serving on "

// start starts the process and returns once it serves.
func (p *process) start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("chaos: %s is running", p.id)
		}
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stderr = &linePrefixer{w: p.log, prefix: p.id + ": "}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.id, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	serving := make(chan error, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() {
			serving <- fmt.Errorf("chaos: %s exited before serving", p.id)
		} else if !strings.HasPrefix(sc.Text(), servingPrefix) {
			serving <- fmt.Errorf("chaos: %s said %q, want %q first", p.id, sc.Text(), servingPrefix+"ADDR")
		} else {
			serving <- nil
		}
		for sc.Scan() {
			fmt.Fprintf(p.log, "%s: %s\n", p.id, sc.Text())
		}
		cmd.Wait()
	}()
	select {
	case err := <-serving:
		return err
	case <-ctx.Done():
		return fmt.Errorf("chaos: waiting for %s to serve: %w", p.id, ctx.Err())
	}
}

func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
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

func (p *process) signal(sig syscall.Signal) error {
	if !p.running() {
		return fmt.Errorf("chaos: %s is not running", p.id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("chaos: %s %s: %w", sig, p.id, err)
	}
	return nil
}

// kill ends the process with SIGKILL and waits for it to exit.
func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.exited
	return nil
}

// terminate ends the process with SIGTERM and waits for it to exit.
func (p *process) terminate() error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("chaos: %s did not stop within %s of SIGTERM", p.id, stopTimeout)
	}
}

// stop ends the process if it runs: SIGCONT and SIGTERM, then SIGKILL after stopTimeout.
func (p *process) stop() error {
	if !p.running() {
		return nil
	}
	p.signal(syscall.SIGCONT)
	if err := p.terminate(); err != nil {
		return errors.Join(err, p.kill())
	}
	return nil
}

// linePrefixer writes each line with a prefix.
type linePrefixer struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		if _, err := fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i]); err != nil {
			return len(b), err
		}
		l.buf = l.buf[i+1:]
	}
}
