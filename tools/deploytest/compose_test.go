package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// composeFile is the cluster under test, from this package's directory.
var composeFile = filepath.Join("..", "..", "deploy", "compose", "compose.yaml")

// services are the cluster's servers, which are also their host names.
var services = []string{"dislog-1", "dislog-2", "dislog-3"}

// project is one compose project: the cluster of one test run, under a name no other run uses.
type project struct {
	t       *testing.T
	name    string
	command []string // "docker compose" or "docker-compose"
	env     []string
	ports   map[string]string // service -> published gRPC port on 127.0.0.1

	mu  sync.Mutex
	ids map[string]string // service -> container ID, until the service is recreated
}

// composeCommand finds Compose: the docker CLI plugin (v2) or the docker-compose program (v1).
func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, fmt.Errorf("neither docker compose nor docker-compose works")
}

// newProject prepares a project with free published ports. The project is torn down, volumes
// and all, when the test ends, however it ends.
func newProject(t *testing.T) *project {
	t.Helper()
	command, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	p := &project{
		t: t, name: "dislogtest" + hex.EncodeToString(suffix), command: command,
		env:   append(os.Environ(), "DISLOG_VERSION=latest"),
		ports: map[string]string{},
		ids:   map[string]string{},
	}
	for i, s := range services {
		p.ports[s] = freePort(t)
		p.env = append(p.env,
			fmt.Sprintf("DISLOG_%d_PORT=%s", i+1, p.ports[s]),
			fmt.Sprintf("DISLOG_%d_ADMIN_PORT=%s", i+1, freePort(t)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := p.compose(context.Background(), "logs", "--no-color", "--tail", "60")
			t.Logf("logs of the cluster:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := p.compose(ctx, "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	return p
}

// freePort returns a port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// compose runs a compose command of the project and returns its output.
func (p *project) compose(ctx context.Context, args ...string) (string, error) {
	full := append(append([]string{}, p.command[1:]...), append([]string{"-p", p.name, "-f", composeFile}, args...)...)
	cmd := exec.CommandContext(ctx, p.command[0], full...)
	cmd.Env = p.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// must runs a compose command, failing the test if it fails.
func (p *project) must(args ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := p.compose(ctx, args...); err != nil {
		p.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// docker runs a docker command and returns its trimmed output.
func docker(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (p *project) docker(args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		p.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// container returns the ID of a service's container.
func (p *project) container(ctx context.Context, service string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.ids[service]; ok {
		return id, nil
	}
	out, err := p.compose(ctx, "ps", "-q", service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" {
		return "", fmt.Errorf("no container for %s: %v %s", service, err, out)
	}
	p.ids[service] = id
	return id, nil
}

func (p *project) mustContainer(service string) string {
	p.t.Helper()
	id, err := p.container(context.Background(), service)
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

// forget drops a service's container ID, after the container is replaced.
func (p *project) forget(service string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ids, service)
}

// network is the project's private network.
func (p *project) network() string { return p.name + "_dislog" }

// dial connects to addr as the cluster's servers know it: a service's host name is its
// container's address on the private network, which the Docker host routes to, looked up at each
// dial because a container can come back with another; anything else is dialed as it is.
func (p *project) dial(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	for _, s := range services {
		if host != s {
			continue
		}
		id, err := p.container(ctx, s)
		if err != nil {
			return nil, err
		}
		ip, err := docker(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id)
		if err != nil || ip == "" {
			return nil, fmt.Errorf("%s has no address (cut off or stopped): %v", s, err)
		}
		addr = net.JoinHostPort(ip, port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// health returns the Docker health status of a service's container.
func (p *project) health(service string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := p.container(ctx, service)
	if err != nil {
		return err.Error()
	}
	out, _ := docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", id)
	return out
}

// pkiFile copies a file of the cluster's pki volume out of a server's container into dir.
func (p *project) pkiFile(dir, path string) string {
	p.t.Helper()
	dst := filepath.Join(dir, filepath.Base(path))
	p.docker("cp", p.mustContainer(services[0])+":"+path, dst)
	return dst
}
