package authz

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPolicyFile feeds arbitrary bytes to the policy loader through Reload:
// it must never panic, a file it rejects must leave the old policy in force,
// and a file it accepts must answer requests without error.
func FuzzPolicyFile(f *testing.F) {
	good, err := os.ReadFile("testdata/policy.csv")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(good),
		"",
		"p, alice, orders.*, produce\ng, bob, alice\n",
		"p, alice, orders, consume, deny\n",
		"p, \"a,b\", \"o\"\"x\", admin\n",
		"p, alice, orders.*.eu, consume\n",
		"p, role:server, *, *\n",
		"g, alice, role:server\n",
		"p,alice\r\n,\n\"",
		"# only a comment\n\n\n",
		"q, alice, orders, produce\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "policy.csv")
		if err := os.WriteFile(path, []byte("p, sentinel, orders, consume\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := New(Options{PolicyFile: path, ReloadInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		sentinel := Subject{Name: "sentinel", Role: RoleClient}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, parseErr := parsePolicy(path, data)
		err = a.Reload()
		if (err == nil) != (parseErr == nil) {
			t.Fatalf("parse error %v but reload error %v", parseErr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) || !strings.HasPrefix(err.Error(), "authz: ") {
				t.Fatalf("reload error %q does not wrap ErrInvalidPolicy", err)
			}
			if err := a.Authorize(sentinel, "orders", ActionConsume); err != nil {
				t.Fatalf("the old policy is gone after a rejected file: %v", err)
			}
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Split(line, ",")
			if len(fields) < 4 {
				continue
			}
			sub := Subject{Name: strings.TrimSpace(fields[1]), Role: RoleServer}
			for _, act := range actions {
				if err := a.Authorize(sub, strings.TrimSpace(fields[2]), act); err != nil && !errors.Is(err, ErrPermissionDenied) {
					t.Fatalf("Authorize: %v", err)
				}
			}
		}
	})
}
