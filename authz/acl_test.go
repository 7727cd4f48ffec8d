package authz_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dislog/dislog/authz"
	"github.com/matryer/is"
)

var (
	alice     = authz.Subject{Name: "alice", Role: authz.RoleClient}
	bob       = authz.Subject{Name: "bob", Role: authz.RoleClient}
	carol     = authz.Subject{Name: "carol", Role: authz.RoleClient}
	analytics = authz.Subject{Name: "analytics", Role: authz.RoleClient}
	ops       = authz.Subject{Name: "ops", Role: authz.RoleClient}
	mallory   = authz.Subject{Name: "mallory", Role: authz.RoleClient}
	stranger  = authz.Subject{Name: "stranger", Role: authz.RoleClient}
	node1     = authz.Subject{Name: "node1", Role: authz.RoleServer}
)

func newAuthorizer(t *testing.T, opts authz.Options) *authz.Authorizer {
	t.Helper()
	a, err := authz.New(opts)
	if err != nil {
		t.Fatalf("authz.New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

func TestAuthorizeFollowsPolicy(t *testing.T) {
	full := newAuthorizer(t, authz.Options{PolicyFile: "testdata/policy.csv", ReloadInterval: -1})
	// A cache of one decision is emptied on nearly every call.
	tiny := newAuthorizer(t, authz.Options{PolicyFile: "testdata/policy.csv", ReloadInterval: -1, MaxCachedDecisions: 1})
	const allow, deny = true, false
	for _, tc := range []struct {
		sub    authz.Subject
		object string
		act    authz.Action
		want   bool
	}{
		{alice, "orders", authz.ActionProduce, allow},
		{alice, "orders", authz.ActionConsume, deny},
		{alice, "orders.eu", authz.ActionProduce, deny},
		{alice, "orders.eu", authz.ActionConsume, allow},
		{alice, "orders.eu.paris", authz.ActionConsume, allow},
		{alice, "orders.", authz.ActionConsume, allow},
		{alice, "ordersx", authz.ActionConsume, deny},
		{alice, "payments", authz.ActionConsume, deny},
		{alice, "orders", authz.ActionAdmin, deny},
		{bob, "orders.eu", authz.ActionConsume, allow},
		{bob, "orders.us", authz.ActionConsume, deny},
		{bob, "orders.eu", authz.ActionProduce, deny},
		{analytics, "anything.at.all", authz.ActionConsume, allow},
		{analytics, "orders", authz.ActionProduce, deny},
		{ops, "orders", authz.ActionAdmin, allow},
		{ops, "x", authz.ActionProduce, allow},
		{mallory, "orders", authz.ActionAdmin, allow},
		{mallory, "secrets.keys", authz.ActionConsume, deny},
		{mallory, "secrets.keys", authz.ActionAdmin, deny},
		{mallory, "secrets", authz.ActionConsume, allow},
		{carol, "metrics.cpu", authz.ActionProduce, allow},
		{carol, "metrics.cpu", authz.ActionConsume, deny},
		{carol, "orders", authz.ActionProduce, deny},
		{stranger, "public", authz.ActionConsume, allow},
		{stranger, "public", authz.ActionProduce, deny},
		{stranger, "publicity", authz.ActionConsume, deny},
		{stranger, "sandbox.tmp", authz.ActionProduce, allow},
		{stranger, "orders", authz.ActionConsume, deny},
		{node1, "sandbox.tmp", authz.ActionProduce, deny},
		{node1, "orders", authz.ActionReplicate, allow},
		{node1, "public", authz.ActionConsume, allow},
		{node1, "orders", authz.ActionConsume, deny},
		{ops, "orders", authz.ActionReplicate, deny},
		{mallory, "orders", authz.ActionReplicate, deny},
	} {
		verb := "may not"
		if tc.want {
			verb = "may"
		}
		t.Run(fmt.Sprintf("%s %s %s %s", tc.sub.Name, verb, tc.act, tc.object), func(t *testing.T) {
			is := is.New(t)
			for _, a := range []*authz.Authorizer{full, tiny} {
				for range 2 { // the second answer comes from the decision cache
					err := a.Authorize(tc.sub, tc.object, tc.act)
					if tc.want {
						is.NoErr(err)
					} else {
						is.True(errors.Is(err, authz.ErrPermissionDenied))
					}
				}
			}
		})
	}
}

func TestOnlyServersReplicateWhateverThePolicySays(t *testing.T) {
	is := is.New(t)
	policy := writePolicy(t, "p, alice, *, *\np, *, *, replicate\n")
	a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})
	err := a.Authorize(alice, "orders", authz.ActionReplicate)
	is.True(errors.Is(err, authz.ErrPermissionDenied))
	is.True(strings.Contains(err.Error(), "only servers"))
	is.NoErr(a.Authorize(node1, "orders", authz.ActionReplicate))
}

func TestAuthorizeDeniesSubjectsThatCannotComeFromACertificate(t *testing.T) {
	policy := writePolicy(t, "p, *, *, *\n")
	a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})
	for _, sub := range []authz.Subject{
		{Name: "alice"},
		{Name: "", Role: authz.RoleClient},
		{Name: "role:server", Role: authz.RoleClient},
		{Name: "alice", Role: authz.Role(9)},
	} {
		t.Run(fmt.Sprintf("%q as %s", sub.Name, sub.Role), func(t *testing.T) {
			is := is.New(t)
			is.True(errors.Is(a.Authorize(sub, "orders", authz.ActionConsume), authz.ErrPermissionDenied))
		})
	}
}

func TestNewRejectsBadOptionsAndFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts authz.Options
		want error
	}{
		{"no policy file", authz.Options{}, nil},
		{"a missing policy file", authz.Options{PolicyFile: filepath.Join(dir, "nope.csv")}, os.ErrNotExist},
		{"a bad policy", authz.Options{PolicyFile: writePolicy(t, "p, alice\n")}, authz.ErrInvalidPolicy},
		{"a negative cache size", authz.Options{PolicyFile: "testdata/policy.csv", MaxCachedDecisions: -1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			a, err := authz.New(tc.opts)
			is.True(err != nil)
			is.Equal(a, nil)
			is.True(strings.HasPrefix(err.Error(), "authz: "))
			if tc.want != nil {
				is.True(errors.Is(err, tc.want))
			}
		})
	}
}

func TestReloadKeepsTheOldPolicyWhenTheNewFileIsBad(t *testing.T) {
	for _, tc := range []struct{ name, policy, msg string }{
		{"an unknown action", "p, alice, orders, prodce\n", `policy.csv:1: unknown action "prodce"`},
		{"an unknown rule type", "p, alice, orders, produce\nq, alice, orders, produce\n", `policy.csv:2: unknown rule type "q"`},
		{"too few fields", "p, alice, orders\n", "policy.csv:1: a p rule has 3 or 4 fields"},
		{"too many fields", "p, alice, orders, produce, allow, extra\n", "policy.csv:1: a p rule has 3 or 4 fields"},
		{"an unknown effect", "p, alice, orders, produce, maybe\n", `unknown effect "maybe"`},
		{"a wildcard in the middle", "p, alice, orders.*.eu, consume\n", "may only stand last"},
		{"an empty object", "p, alice, , consume\n", "empty object"},
		{"an empty subject", "p, , orders, consume\n", "empty subject"},
		{"an unknown role", "p, role:admin, orders, consume\n", `unknown role subject "role:admin"`},
		{"a group that is a role", "g, alice, role:server\n", "roles come only from certificates"},
		{"a group of everyone", "g, *, producers\n", "must be a plain name"},
		{"a short g rule", "g, alice\n", "a g rule has 2 fields"},
		{"a broken quote", "p, \"alice, orders, produce\n", "policy.csv"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			policy := writePolicy(t, "p, alice, orders, consume\n")
			a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})
			replace(t, policy, tc.policy)

			err := a.Reload()
			is.True(errors.Is(err, authz.ErrInvalidPolicy))
			is.True(strings.Contains(err.Error(), tc.msg)) // the error says where and what
			is.NoErr(a.Authorize(alice, "orders", authz.ActionConsume))
		})
	}
	t.Run("a deleted file", func(t *testing.T) {
		is := is.New(t)
		policy := writePolicy(t, "p, alice, orders, consume\n")
		a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})
		is.NoErr(os.Remove(policy))
		is.True(errors.Is(a.Reload(), os.ErrNotExist))
		is.NoErr(a.Authorize(alice, "orders", authz.ActionConsume))
	})
}

func TestReloadPutsTheNewPolicyInForce(t *testing.T) {
	is := is.New(t)
	policy := writePolicy(t, "p, alice, orders, consume\n")
	a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})
	is.NoErr(a.Authorize(alice, "orders", authz.ActionConsume)) // cached now

	replace(t, policy, "p, bob, orders, consume\n")
	is.NoErr(a.Reload())
	is.True(errors.Is(a.Authorize(alice, "orders", authz.ActionConsume), authz.ErrPermissionDenied))
	is.NoErr(a.Authorize(bob, "orders", authz.ActionConsume))
}

func TestWatcherLoadsAChangedFile(t *testing.T) {
	is := is.New(t)
	policy := writePolicy(t, "p, alice, orders, consume\n")
	reloads := make(chan error, 16)
	a := newAuthorizer(t, authz.Options{
		PolicyFile:     policy,
		ReloadInterval: 5 * time.Millisecond,
		OnReload:       func(err error) { reloads <- err },
	})

	replace(t, policy, "p, bob, orders, consume\n")
	waitFor(t, "bob to be allowed", func() bool { return a.Authorize(bob, "orders", authz.ActionConsume) == nil })
	is.NoErr(<-reloads)
	is.True(errors.Is(a.Authorize(alice, "orders", authz.ActionConsume), authz.ErrPermissionDenied))

	replace(t, policy, "p, bob, orders, consume\np, bob, orders, produce, maybe\n")
	select {
	case err := <-reloads:
		is.True(errors.Is(err, authz.ErrInvalidPolicy))
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not try the bad file")
	}
	is.NoErr(a.Authorize(bob, "orders", authz.ActionConsume))
}

func TestCloseStopsTheWatcher(t *testing.T) {
	is := is.New(t)
	policy := writePolicy(t, "p, alice, orders, consume\n")
	reloads := make(chan error, 16)
	a := newAuthorizer(t, authz.Options{
		PolicyFile:     policy,
		ReloadInterval: time.Millisecond,
		OnReload:       func(err error) { reloads <- err },
	})
	a.Close()
	a.Close() // twice is fine
	replace(t, policy, "p, bob, orders, consume\n")
	// Close waited for the watcher to return, so nothing can call OnReload.
	is.Equal(len(reloads), 0)
	is.NoErr(a.Authorize(alice, "orders", authz.ActionConsume))
	is.NoErr(a.Reload())
	is.NoErr(a.Authorize(bob, "orders", authz.ActionConsume))
}

// TestNoRequestSeesAHalfLoadedPolicy reloads, while requests run, files whose
// whole answer is "deny" but any prefix of which answers "allow": the allow
// rules come first and the deny rule last. One answer "allow" would mean a
// request saw part of a file. The bad file has the same allow rules and a
// broken last line.
func TestNoRequestSeesAHalfLoadedPolicy(t *testing.T) {
	is := is.New(t)
	var whole [2]string
	for i := range whole {
		var b strings.Builder
		b.WriteString("p, alice, orders, consume\n")
		for j := range 200 * (i + 1) {
			fmt.Fprintf(&b, "p, alice, filler.%d, consume\n", j)
		}
		b.WriteString("p, alice, orders, consume, deny\n")
		whole[i] = b.String()
	}
	bad := strings.Replace(whole[1], "consume, deny", "consume, nope", 1)
	policy := writePolicy(t, whole[0])
	a := newAuthorizer(t, authz.Options{PolicyFile: policy, ReloadInterval: -1})

	stop := make(chan struct{})
	var allowed sync.WaitGroup
	var sawAllow sync.Once
	var half bool
	for range 2 {
		allowed.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if a.Authorize(alice, "orders", authz.ActionConsume) == nil {
					sawAllow.Do(func() { half = true })
				}
				// Other objects miss the cache and run the matcher.
				_ = a.Authorize(alice, fmt.Sprintf("orders.%d", i%50), authz.ActionConsume)
			}
		})
	}
	for i := range 100 {
		switch i % 3 {
		case 2:
			replace(t, policy, bad)
			is.True(errors.Is(a.Reload(), authz.ErrInvalidPolicy))
		default:
			replace(t, policy, whole[i%3])
			is.NoErr(a.Reload())
		}
	}
	close(stop)
	allowed.Wait()
	is.True(!half)
}

func TestAModelFileReplacesTheBuiltInOne(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "model.conf")
	// No deny override: any allow rule wins.
	replace(t, model, `
[request_definition]
r = sub, role, obj, act
[policy_definition]
p = sub, obj, act, eft
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = (p.sub == "*" || p.sub == r.role || g(r.sub, p.sub)) && keyMatch(r.obj, p.obj) && (p.act == "*" || p.act == r.act)
`)
	a := newAuthorizer(t, authz.Options{PolicyFile: "testdata/policy.csv", ModelFile: model, ReloadInterval: -1})
	is.NoErr(a.Authorize(mallory, "secrets.keys", authz.ActionConsume))
	is.True(errors.Is(a.Authorize(stranger, "orders", authz.ActionConsume), authz.ErrPermissionDenied))
}

func TestABadModelFileIsRejected(t *testing.T) {
	for _, tc := range []struct{ name, model string }{
		{"not a model", "this is not a casbin model"},
		{"a request without the role", "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n"},
		{"no role definition", "[request_definition]\nr = sub, role, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n"},
		{"a matcher that does not evaluate", "[request_definition]\nr = sub, role, obj, act\n[policy_definition]\np = sub, obj, act, eft\n[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = nosuchfunc(r.sub, p.sub)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			model := filepath.Join(t.TempDir(), "model.conf")
			replace(t, model, tc.model)
			_, err := authz.New(authz.Options{PolicyFile: "testdata/policy.csv", ModelFile: model})
			is.True(errors.Is(err, authz.ErrInvalidModel))
		})
	}
}

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.csv")
	replace(t, path, text)
	return path
}

// replace writes path whole by renaming a finished file over it, the way an
// operator should.
func replace(t testing.TB, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
