package authz_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dislog/dislog/authz"
)

// benchPolicy writes a policy of n rules: per user, an exact topic, a
// wildcard family and a deny, plus groups, so the matcher does real work.
func benchPolicy(b *testing.B, n int) string {
	b.Helper()
	var sb strings.Builder
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&sb, "p, user%d, topic%d, produce\n", i, i)
		case 1:
			fmt.Fprintf(&sb, "p, user%d, family%d.*, consume\n", i-1, i)
		case 2:
			fmt.Fprintf(&sb, "p, user%d, family%d.secret, consume, deny\n", i-2, i-1)
		case 3:
			fmt.Fprintf(&sb, "g, user%d, group%d\n", i-3, i%50)
		}
	}
	path := filepath.Join(b.TempDir(), "policy.csv")
	replace(b, path, sb.String())
	return path
}

// benchRequests are a mix of allowed and denied requests by the users of
// benchPolicy.
func benchRequests(n int) []struct {
	sub    authz.Subject
	object string
	act    authz.Action
} {
	reqs := make([]struct {
		sub    authz.Subject
		object string
		act    authz.Action
	}, n)
	for i := range reqs {
		u := (i * 4) % 1000
		reqs[i].sub = authz.Subject{Name: fmt.Sprintf("user%d", u), Role: authz.RoleClient}
		switch i % 3 {
		case 0:
			reqs[i].object, reqs[i].act = fmt.Sprintf("topic%d", u), authz.ActionProduce
		case 1:
			reqs[i].object, reqs[i].act = fmt.Sprintf("family%d.eu", u+1), authz.ActionConsume
		case 2:
			reqs[i].object, reqs[i].act = fmt.Sprintf("family%d.secret", u+1), authz.ActionConsume
		}
	}
	return reqs
}

// BenchmarkAuthorize is decisions per second against a 1,000-rule policy,
// over 1,000 distinct requests, from all cores: the steady state, where the
// decision cache answers.
func BenchmarkAuthorize(b *testing.B) {
	a, err := authz.New(authz.Options{PolicyFile: benchPolicy(b, 1000), ReloadInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	reqs := benchRequests(1000)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) * 7919)
		for pb.Next() {
			r := reqs[i%len(reqs)]
			_ = a.Authorize(r.sub, r.object, r.act)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkAuthorizeUncached is the cost of a decision the cache does not
// hold: the Casbin matcher over every rule. The cache holds one decision, and
// requests rotate over a thousand.
func BenchmarkAuthorizeUncached(b *testing.B) {
	a, err := authz.New(authz.Options{PolicyFile: benchPolicy(b, 1000), ReloadInterval: -1, MaxCachedDecisions: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	reqs := benchRequests(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := reqs[i%len(reqs)]
		_ = a.Authorize(r.sub, r.object, r.act)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
