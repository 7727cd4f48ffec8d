package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// ModulePrefix is the path of every module of the repository but its directory.
const ModulePrefix = "github.com/dislog/dislog/"

// FileName is the name of the versions file at the repository's root.
const FileName = "versions.yaml"

// ErrCheck is returned by [Versions.Check] when a go.mod or go.sum disagrees with the versions
// file; the error lists every disagreement.
var ErrCheck = errors.New("release: the modules disagree with " + FileName)

// ErrDirty is returned by [Versions.Tag] when the working tree has changes: a tag must name a
// commit that holds what was checked.
var ErrDirty = errors.New("release: the working tree has uncommitted changes")

// Module is one module of the repository.
type Module struct {
	// Dir is the module's directory under the root, and the last element of its path.
	Dir string
	// Version is the version it is released at: a semantic version such as v0.2.0.
	Version string `yaml:"version"`
	// MayRequire are the directories of the sibling modules it may require.
	MayRequire []string `yaml:"may-require"`
}

// Path is the module path.
func (m Module) Path() string { return ModulePrefix + m.Dir }

// Tag is the module's release tag: <dir>/<version>.
func (m Module) Tag() string { return m.Dir + "/" + m.Version }

// Versions is the versions file of a repository.
type Versions struct {
	// Root is the repository's root directory.
	Root string
	// Modules are the modules, each after every module it may require.
	Modules []Module
}

// Load reads root/versions.yaml and checks that it is well formed: semantic versions, known
// siblings, no cycle, and the same modules as go.work.
func Load(root string) (*Versions, error) {
	b, err := os.ReadFile(filepath.Join(root, FileName))
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	var f struct {
		Modules map[string]Module `yaml:"modules"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("release: %s: %w", FileName, err)
	}
	v := &Versions{Root: root}
	// Order the modules so that each comes after the ones it may require, alphabetically among
	// equals, and refuse a cycle.
	done := map[string]bool{}
	for len(done) < len(f.Modules) {
		var ready []string
		for dir, m := range f.Modules {
			if done[dir] {
				continue
			}
			if !slices.ContainsFunc(m.MayRequire, func(d string) bool { return !done[d] }) {
				ready = append(ready, dir)
			}
		}
		if len(ready) == 0 {
			return nil, fmt.Errorf("release: %s: the may-require lists make a cycle or name an unknown module", FileName)
		}
		slices.Sort(ready)
		for _, dir := range ready {
			m := f.Modules[dir]
			m.Dir = dir
			if !semver.IsValid(m.Version) || semver.Build(m.Version) != "" || semver.Canonical(m.Version) != m.Version {
				return nil, fmt.Errorf("release: %s: %s: %q is not a canonical semantic version (vX.Y.Z)", FileName, dir, m.Version)
			}
			if semver.Major(m.Version) != "v0" && semver.Major(m.Version) != "v1" {
				return nil, fmt.Errorf("release: %s: %s: version %s needs a /%s module path", FileName, dir, m.Version, semver.Major(m.Version))
			}
			v.Modules = append(v.Modules, m)
			done[dir] = true
		}
	}
	work, err := workspaceDirs(root)
	if err != nil {
		return nil, err
	}
	var listed []string
	for _, m := range v.Modules {
		listed = append(listed, m.Dir)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, work) {
		return nil, fmt.Errorf("release: %s lists %v, go.work uses %v", FileName, listed, work)
	}
	return v, nil
}

func workspaceDirs(root string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	wf, err := modfile.ParseWork("go.work", b, nil)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	var dirs []string
	for _, u := range wf.Use {
		dirs = append(dirs, filepath.ToSlash(filepath.Clean(u.Path)))
	}
	slices.Sort(dirs)
	return dirs, nil
}

// Module returns the module in dir.
func (v *Versions) Module(dir string) (Module, bool) {
	i := slices.IndexFunc(v.Modules, func(m Module) bool { return m.Dir == dir })
	if i < 0 {
		return Module{}, false
	}
	return v.Modules[i], true
}

func (v *Versions) byPath(path string) (Module, bool) {
	dir, ok := strings.CutPrefix(path, ModulePrefix)
	if !ok {
		return Module{}, false
	}
	return v.Module(dir)
}

func (v *Versions) readMod(m Module) (*modfile.File, error) {
	name := filepath.Join(v.Root, m.Dir, "go.mod")
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	f, err := modfile.Parse(name, b, nil)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return f, nil
}

// Check holds every go.mod and go.sum to the versions file: the module path is its directory's;
// a sibling is required at the version the file gives it, and only if the file lets it be
// (so no module requires tools); no replace directive names a sibling (go install refuses a
// module with any replace, and outside the workspace a replace hides what users get); and go.sum
// holds no line of a sibling, whose hashes change with every commit of the tree. The error wraps
// [ErrCheck] and lists every problem.
func (v *Versions) Check() error {
	var problems []string
	for _, m := range v.Modules {
		f, err := v.readMod(m)
		if err != nil {
			return err
		}
		if f.Module == nil || f.Module.Mod.Path != m.Path() {
			problems = append(problems, fmt.Sprintf("%s/go.mod: the module path is not %s", m.Dir, m.Path()))
		}
		for _, r := range f.Require {
			sib, ok := v.byPath(r.Mod.Path)
			switch {
			case !strings.HasPrefix(r.Mod.Path, ModulePrefix):
			case !ok:
				problems = append(problems, fmt.Sprintf("%s/go.mod requires %s, which is not in %s", m.Dir, r.Mod.Path, FileName))
			case !slices.Contains(m.MayRequire, sib.Dir):
				problems = append(problems, fmt.Sprintf("%s/go.mod requires %s, which %s does not let it (arrows run one way; nothing requires tools)", m.Dir, sib.Dir, FileName))
			case r.Mod.Version != sib.Version:
				problems = append(problems, fmt.Sprintf("%s/go.mod requires %s %s, %s says %s (run: make release-update)", m.Dir, sib.Dir, r.Mod.Version, FileName, sib.Version))
			}
		}
		for _, r := range f.Replace {
			problems = append(problems, fmt.Sprintf("%s/go.mod replaces %s: go install refuses a module with a replace, and go.work already makes development use the tree", m.Dir, r.Old.Path))
		}
		sum, err := os.ReadFile(filepath.Join(v.Root, m.Dir, "go.sum"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release: %w", err)
		}
		if bytes.Contains(sum, []byte(ModulePrefix)) {
			problems = append(problems, fmt.Sprintf("%s/go.sum holds lines of sibling modules, whose hashes change with every commit: remove them", m.Dir))
		}
	}
	wf, err := v.readWork()
	if err != nil {
		return err
	}
	for _, m := range v.Modules {
		i := slices.IndexFunc(wf.Replace, func(r *modfile.Replace) bool { return r.Old.Path == m.Path() })
		if i < 0 || wf.Replace[i].Old.Version != m.Version || wf.Replace[i].New.Path != "./"+m.Dir {
			problems = append(problems, fmt.Sprintf("go.work does not replace %s %s with ./%s (run: make release-update)", m.Path(), m.Version, m.Dir))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrCheck, strings.Join(problems, "\n  "))
	}
	return nil
}

func (v *Versions) readWork() (*modfile.WorkFile, error) {
	name := filepath.Join(v.Root, "go.work")
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	wf, err := modfile.ParseWork(name, b, nil)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return wf, nil
}

// updateWork makes go.work replace each module at its version with its directory. The workspace
// uses its modules' trees in any case, but the go command still reads the go.mod of the version a
// sibling requires (to prune the module graph) unless a replace names that version.
func (v *Versions) updateWork() (bool, error) {
	wf, err := v.readWork()
	if err != nil {
		return false, err
	}
	before := modfile.Format(wf.Syntax)
	for _, r := range slices.Clone(wf.Replace) {
		if strings.HasPrefix(r.Old.Path, ModulePrefix) {
			if err := wf.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return false, fmt.Errorf("release: %w", err)
			}
		}
	}
	for _, m := range v.Modules {
		if err := wf.AddReplace(m.Path(), m.Version, "./"+m.Dir, ""); err != nil {
			return false, fmt.Errorf("release: %w", err)
		}
	}
	wf.Cleanup()
	after := modfile.Format(wf.Syntax)
	if bytes.Equal(before, after) {
		return false, nil
	}
	if err := os.WriteFile(filepath.Join(v.Root, "go.work"), after, 0o644); err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return true, nil
}

// Update rewrites every go.mod so that each sibling it requires is at the version of the versions
// file, and drops replace directives of siblings; and it makes go.work replace each module at its
// version with its directory. It returns the files it changed.
func (v *Versions) Update() ([]string, error) {
	var changed []string
	if ok, err := v.updateWork(); err != nil {
		return nil, err
	} else if ok {
		changed = append(changed, "go.work")
	}
	for _, m := range v.Modules {
		f, err := v.readMod(m)
		if err != nil {
			return nil, err
		}
		before, err := f.Format()
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		for _, r := range f.Require {
			if sib, ok := v.byPath(r.Mod.Path); ok && r.Mod.Version != sib.Version {
				if err := f.AddRequire(sib.Path(), sib.Version); err != nil {
					return nil, fmt.Errorf("release: %w", err)
				}
			}
		}
		for _, r := range slices.Clone(f.Replace) {
			if _, ok := v.byPath(r.Old.Path); ok {
				if err := f.DropReplace(r.Old.Path, r.Old.Version); err != nil {
					return nil, fmt.Errorf("release: %w", err)
				}
			}
		}
		f.Cleanup()
		after, err := f.Format()
		if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		if !bytes.Equal(before, after) {
			if err := os.WriteFile(filepath.Join(v.Root, m.Dir, "go.mod"), after, 0o644); err != nil {
				return nil, fmt.Errorf("release: %w", err)
			}
			changed = append(changed, m.Dir+"/go.mod")
		}
	}
	return changed, nil
}

var versionLine = regexp.MustCompile(`(?m)^(\s+version:\s*)v\S+`)

// SetVersion gives every module version in the versions file and in v: the modules of the
// repository are released together.
func (v *Versions) SetVersion(version string) error {
	if !semver.IsValid(version) || semver.Canonical(version) != version {
		return fmt.Errorf("release: %q is not a canonical semantic version (vX.Y.Z)", version)
	}
	name := filepath.Join(v.Root, FileName)
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	b = versionLine.ReplaceAll(b, []byte("${1}"+version))
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	for i := range v.Modules {
		v.Modules[i].Version = version
	}
	return nil
}

// Tag checks the modules and creates, at HEAD, the tag <dir>/<version> of every module. It refuses
// a working tree with changes ([ErrDirty]) and a tag that exists already, before creating any.
func (v *Versions) Tag() ([]string, error) {
	if err := v.Check(); err != nil {
		return nil, err
	}
	status, err := v.git("status", "--porcelain")
	if err != nil {
		return nil, err
	}
	if status != "" {
		return nil, fmt.Errorf("%w:\n%s", ErrDirty, status)
	}
	var tags []string
	for _, m := range v.Modules {
		if _, err := v.git("rev-parse", "-q", "--verify", "refs/tags/"+m.Tag()); err == nil {
			return nil, fmt.Errorf("release: tag %s exists already", m.Tag())
		}
		tags = append(tags, m.Tag())
	}
	for _, t := range tags {
		if _, err := v.git("tag", "-a", t, "-m", t); err != nil {
			return nil, err
		}
	}
	return tags, nil
}

func (v *Versions) git(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = v.Root
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("release: git %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return "", fmt.Errorf("release: git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
