package release

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// WriteProxy writes into dir a module proxy (the GOPROXY protocol as files, for
// GOPROXY=file://dir) that serves every module of the working tree at its version: the module
// zip, made by golang.org/x/mod/zip from the directory as it is now, committed or not, its go.mod
// and its .info. Whatever dir held of these modules before is replaced.
func (v *Versions) WriteProxy(dir string) error {
	for _, m := range v.Modules {
		esc, err := module.EscapePath(m.Path())
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		at := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.RemoveAll(at); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		if err := os.MkdirAll(at, 0o755); err != nil {
			return fmt.Errorf("release: %w", err)
		}
		src := filepath.Join(v.Root, m.Dir)
		var z bytes.Buffer
		if err := zip.CreateFromDir(&z, module.Version{Path: m.Path(), Version: m.Version}, src); err != nil {
			return fmt.Errorf("release: zip %s: %w", m.Dir, err)
		}
		mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		info, err := json.Marshal(struct {
			Version string
			Time    time.Time
		}{m.Version, time.Now().UTC().Truncate(time.Second)})
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		for name, data := range map[string][]byte{
			"list":              []byte(m.Version + "\n"),
			m.Version + ".info": info,
			m.Version + ".mod":  mod,
			m.Version + ".zip":  z.Bytes(),
		} {
			if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
				return fmt.Errorf("release: %w", err)
			}
		}
	}
	return nil
}

// Sandbox is a directory that holds a module proxy made from the working tree (proxy/), a
// module cache of its own (modcache/) and copies of go.mod files (modfiles/). Open it with
// [Versions.OpenSandbox]; one process at a time holds it, and [Sandbox.Close] lets it go.
//
// The module cache is its own because the cache never replaces a version it holds: a tree
// changed since the last build would otherwise be built from the older copy. Its Dislog modules
// are removed on open; the third-party ones stay, so that the build cache, which is keyed by
// source directories, serves later builds. They are fetched from the usual module cache first
// (GOPROXY=file://…/cache/download), so opening a new sandbox downloads nothing known already.
type Sandbox struct {
	Dir string

	v        *Versions
	lock     *os.File
	goproxy  string
	gonosum  string
	gomodsrc string
	godebug  string
}

// OpenSandbox makes dir a sandbox with the working tree's modules: it waits for any other process
// holding dir, writes the proxy, and empties the module cache of Dislog modules. The go command
// in the environment (its GOPROXY, GOMODCACHE) gives what the sandbox falls back to.
func (v *Versions) OpenSandbox(dir string) (*Sandbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("release: lock %s: %w", dir, err)
	}
	s := &Sandbox{Dir: dir, v: v, lock: lock}
	if err := s.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sandbox) open() error {
	out, err := exec.Command("go", "env", "GOPROXY", "GONOSUMDB", "GOMODCACHE", "GODEBUG").Output()
	if err != nil {
		return fmt.Errorf("release: go env: %w", err)
	}
	env := strings.Split(string(out), "\n") // one line a variable, empty ones included
	if len(env) < 4 {
		return fmt.Errorf("release: go env printed %q", out)
	}
	s.goproxy, s.gonosum, s.gomodsrc, s.godebug = env[0], env[1], env[2], env[3]
	if err := s.v.WriteProxy(filepath.Join(s.Dir, "proxy")); err != nil {
		return err
	}
	cache := filepath.Join(s.Dir, "modcache")
	for _, d := range []string{
		filepath.Join(cache, filepath.FromSlash(ModulePrefix)),
		filepath.Join(cache, "cache", "download", filepath.FromSlash(ModulePrefix)),
	} {
		if err := removeAll(d); err != nil {
			return err
		}
	}
	return nil
}

// removeAll removes dir, whose files the module cache may have made read-only.
func removeAll(dir string) error {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// Close lets the sandbox go.
func (s *Sandbox) Close() error {
	return s.lock.Close()
}

// Env is the environment, to append to os.Environ(), in which the go command builds outside the
// workspace with the sandbox's proxy and module cache: GOWORK=off; the proxy first, then the usual
// module cache and the usual proxies; the checksum database off for Dislog modules only; and
// module cache files left writable (-modcacherw) so the sandbox can empty it; and the go command's
// index of module cache packages off (GODEBUG=goindex=0): it is keyed by the module's directory
// alone, since a version in the module cache never changes, and here it does, so the index would
// name the files and imports of an older tree.
func (s *Sandbox) Env() []string {
	nosum := "github.com/dislog/dislog"
	if s.gonosum != "" {
		nosum += "," + s.gonosum
	}
	proxy := "file://" + filepath.ToSlash(filepath.Join(s.Dir, "proxy"))
	if src := filepath.Join(s.gomodsrc, "cache", "download"); s.gomodsrc != "" {
		proxy += ",file://" + filepath.ToSlash(src)
	}
	if s.goproxy != "" {
		proxy += "," + s.goproxy
	}
	godebug := "goindex=0"
	if s.godebug != "" {
		godebug = s.godebug + "," + godebug
	}
	return []string{
		"GOWORK=off",
		"GODEBUG=" + godebug,
		"GOPROXY=" + proxy,
		"GONOSUMDB=" + nosum,
		"GOMODCACHE=" + filepath.Join(s.Dir, "modcache"),
		"GOFLAGS=-modcacherw",
	}
}

// ModuleEnv is [Sandbox.Env] for building the module in dir as its users build it: its go.mod
// and go.sum are copied into the sandbox and used from there (-modfile), with -mod=mod so that
// the go.sum lines of siblings, which are never committed, are added to the copy.
func (s *Sandbox) ModuleEnv(dir string) ([]string, error) {
	modfile, err := s.copyModFiles(dir)
	if err != nil {
		return nil, err
	}
	env := slices.DeleteFunc(s.Env(), func(e string) bool { return strings.HasPrefix(e, "GOFLAGS=") })
	return append(env, "GOFLAGS=-modcacherw -mod=mod -modfile="+modfile), nil
}

// copyModFiles copies dir's go.mod and go.sum into the sandbox and returns the copy of go.mod.
func (s *Sandbox) copyModFiles(dir string) (string, error) {
	if _, ok := s.v.Module(dir); !ok {
		return "", fmt.Errorf("release: no module %q in %s", dir, FileName)
	}
	to := filepath.Join(s.Dir, "modfiles", dir)
	if err := os.MkdirAll(to, 0o755); err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(s.v.Root, dir, name))
		if err != nil && !(name == "go.sum" && os.IsNotExist(err)) {
			return "", fmt.Errorf("release: %w", err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o644); err != nil {
			return "", fmt.Errorf("release: %w", err)
		}
	}
	return filepath.Join(to, "go.mod"), nil
}
