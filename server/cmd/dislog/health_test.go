package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// health runs "dislog health" with args and env and returns its error and output.
func health(env map[string]string, args ...string) (string, error) {
	cmd := newCommand(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"health"}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestHealthAsksTheAdminServerNamedByFlagEnvironmentOrConfigFile(t *testing.T) {
	is := is.New(t)
	_, admin, stop := startDevAdmin(t, t.TempDir())
	is.True(admin != "")
	// The server's own config file, with keys health does not have, names the admin address.
	file := filepath.Join(t.TempDir(), "dislog.toml")
	is.NoErr(os.WriteFile(file, []byte("data-dir = \"/var/lib/dislog\"\nadmin-addr = \""+admin+"\"\n"), 0o644))
	_, port, _ := strings.Cut(admin, ":")
	// A node is healthy once it knows a leader: its own, a moment after it starts.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := health(nil, "--admin-addr", admin)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev node never became healthy: %v", err)
		}
		<-tick.C
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"from the flag", nil, []string{"--admin-addr", admin}},
		{"from the environment", map[string]string{"DISLOG_ADMIN_ADDR": admin}, nil},
		{"from the config file", nil, []string{"--config", file}},
		{"on loopback when the server listens on every address", nil, []string{"--admin-addr", "0.0.0.0:" + port}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			out, err := health(tc.env, tc.args...)
			is.NoErr(err)
			is.Equal(out, "ok\n")
		})
	}

	is.NoErr(stop())
	_, err := health(nil, "--admin-addr", admin)
	is.True(err != nil) // a stopped server is not healthy
	_, err = health(nil, "--admin-addr", "")
	is.True(err == errNoAdmin)
}
