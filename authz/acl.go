package authz

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"
)

// Options configures an [Authorizer].
type Options struct {
	// PolicyFile is the CSV policy (see the package documentation for its
	// rules). Required.
	PolicyFile string
	// ModelFile is a Casbin model that replaces the built-in one. Optional.
	ModelFile string
	// ReloadInterval is how often the policy and model files are checked for
	// changes. A change is loaded once the file has stayed the same for one
	// interval, so a file caught half-written is not loaded. Default 1s; a
	// negative interval turns watching off, leaving [Authorizer.Reload].
	ReloadInterval time.Duration
	// OnReload, if set, is called after every reload the file watcher makes,
	// with nil or the error that kept the old policy in force. The server
	// logs it.
	OnReload func(error)
	// MaxCachedDecisions bounds the decisions remembered per loaded policy.
	// A decision not remembered runs the Casbin matcher over every rule
	// (see docs/BENCHMARKS.md for the cost); when the cache is full it is
	// emptied and refills with the decisions in use. Default 100,000.
	MaxCachedDecisions int
}

const (
	defaultReloadInterval     = time.Second
	defaultMaxCachedDecisions = 100_000
)

func (o Options) withDefaults() (Options, error) {
	if o.PolicyFile == "" {
		return o, errors.New("authz: Options.PolicyFile is required")
	}
	if o.ReloadInterval == 0 {
		o.ReloadInterval = defaultReloadInterval
	}
	if o.MaxCachedDecisions < 0 {
		return o, fmt.Errorf("authz: Options.MaxCachedDecisions is %d, must be >= 0", o.MaxCachedDecisions)
	}
	if o.MaxCachedDecisions == 0 {
		o.MaxCachedDecisions = defaultMaxCachedDecisions
	}
	return o, nil
}

// Authorizer answers whether a subject may do an action on an object. It is
// safe for concurrent use.
type Authorizer struct {
	opts Options
	cur  atomic.Pointer[policy]

	mu     sync.Mutex // serializes reloads; guards loaded
	loaded stamps     // the files as they were when last loaded or tried

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New loads the policy and, unless watching is off, starts watching its
// files. Call Close to stop watching.
func New(opts Options) (*Authorizer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &Authorizer{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	if opts.ReloadInterval < 0 {
		close(a.done)
		return a, nil
	}
	go a.watch()
	return a, nil
}

// Authorize returns nil if sub may do act on object, and otherwise an error
// wrapping [ErrPermissionDenied] that says why. Replication is allowed only
// to [RoleServer] subjects, whatever the policy says.
func (a *Authorizer) Authorize(sub Subject, object string, act Action) error {
	if sub.Role != RoleServer && sub.Role != RoleClient {
		return fmt.Errorf("%w: subject %q has no role", ErrPermissionDenied, sub.Name)
	}
	if act == ActionReplicate && sub.Role != RoleServer {
		return fmt.Errorf("%w: %s %q may not replicate: only servers may", ErrPermissionDenied, sub.Role, sub.Name)
	}
	if err := checkName(sub.Name); err != nil {
		return fmt.Errorf("%w: %v", ErrPermissionDenied, err)
	}
	ok, err := a.cur.Load().decide(decision{sub.Name, sub.Role, object, act})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermissionDenied, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s %q may not %s %q", ErrPermissionDenied, sub.Role, sub.Name, act, object)
	}
	return nil
}

// Reload reads the policy and model files again and, if they are good, puts
// them in force at once. If they are not, it returns an error wrapping
// [ErrInvalidPolicy] or [ErrInvalidModel] (or the read error) and the policy
// in force stays as it was.
func (a *Authorizer) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reloadLocked()
}

func (a *Authorizer) reloadLocked() error {
	// Stamp before reading: a change made while reading is seen as a change
	// by the next look and loaded then.
	a.loaded = statFiles(a.opts.PolicyFile, a.opts.ModelFile)
	p, err := loadPolicy(a.opts)
	if err != nil {
		return err
	}
	a.cur.Store(p)
	return nil
}

// Close stops watching the files. The policy in force stays in force, and
// Authorize and Reload go on working.
func (a *Authorizer) Close() {
	a.closeOnce.Do(func() { close(a.stop) })
	<-a.done
}

func (a *Authorizer) watch() {
	defer close(a.done)
	t := time.NewTicker(a.opts.ReloadInterval)
	defer t.Stop()
	a.mu.Lock()
	seen := a.loaded
	a.mu.Unlock()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		now := statFiles(a.opts.PolicyFile, a.opts.ModelFile)
		if now != seen {
			seen = now // wait one interval for the writer to finish
			continue
		}
		a.mu.Lock()
		if now == a.loaded {
			a.mu.Unlock()
			continue
		}
		err := a.reloadLocked()
		a.mu.Unlock()
		if a.opts.OnReload != nil {
			a.opts.OnReload(err)
		}
	}
}

// stamps identify the policy and model files' contents by size and
// modification time.
type stamps [2]stamp

type stamp struct {
	size    int64
	modTime int64
	err     bool
}

func statFiles(policyFile, modelFile string) stamps {
	var s stamps
	for i, f := range []string{policyFile, modelFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			s[i].err = true
			continue
		}
		s[i] = stamp{size: fi.Size(), modTime: fi.ModTime().UnixNano()}
	}
	return s
}

// policy is one loaded policy: an enforcer that is never changed after it is
// built, and the decisions made with it. A reload makes a new policy, so the
// cache never outlives the rules it was computed from.
type policy struct {
	enforcer *casbin.Enforcer
	max      int

	mu        sync.RWMutex
	decisions map[decision]bool
}

type decision struct {
	name   string
	role   Role
	object string
	act    Action
}

func loadPolicy(opts Options) (*policy, error) {
	m, err := loadModel(opts.ModelFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(opts.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("authz: read policy: %w", err)
	}
	rs, err := parsePolicy(opts.PolicyFile, data)
	if err != nil {
		return nil, err
	}
	e, err := newEnforcer(m, rs, opts.PolicyFile)
	if err != nil {
		return nil, err
	}
	return &policy{enforcer: e, max: opts.MaxCachedDecisions, decisions: make(map[decision]bool)}, nil
}

func (p *policy) decide(d decision) (bool, error) {
	p.mu.RLock()
	ok, hit := p.decisions[d]
	p.mu.RUnlock()
	if hit {
		return ok, nil
	}
	ok, err := p.enforcer.Enforce(d.name, roleSubject(d.role), d.object, string(d.act))
	if err != nil {
		return false, err
	}
	p.mu.Lock()
	if len(p.decisions) >= p.max {
		clear(p.decisions)
	}
	p.decisions[d] = ok
	p.mu.Unlock()
	return ok, nil
}
