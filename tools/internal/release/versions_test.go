package release_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dislog/dislog/tools/internal/release"
	"github.com/matryer/is"
)

// fakeRepo writes a repository of three modules: low, mid (which may require low) and top (which
// may require both), each go.mod as given, and returns its root.
func fakeRepo(t *testing.T, mods map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"versions.yaml": `modules:
  low:
    version: v0.2.0
  mid:
    version: v0.2.0
    may-require: [low]
  top:
    version: v0.2.0
    may-require: [low, mid]
`,
		"go.work": `go 1.26.8

use (
	./low
	./mid
	./top
)

replace github.com/dislog/dislog/low v0.2.0 => ./low

replace github.com/dislog/dislog/mid v0.2.0 => ./mid

replace github.com/dislog/dislog/top v0.2.0 => ./top
`,
	}
	for dir, mod := range mods {
		files[dir+"/go.mod"] = mod
	}
	for name, data := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func goMod(dir string, lines ...string) string {
	return "module github.com/dislog/dislog/" + dir + "\n\ngo 1.26.8\n\n" + strings.Join(lines, "\n") + "\n"
}

var goodMods = map[string]string{
	"low": goMod("low"),
	"mid": goMod("mid", "require github.com/dislog/dislog/low v0.2.0"),
	"top": goMod("top", "require (", "\tgithub.com/dislog/dislog/low v0.2.0", "\tgithub.com/dislog/dislog/mid v0.2.0", ")"),
}

func with(dir, mod string) map[string]string {
	m := map[string]string{}
	for k, v := range goodMods {
		m[k] = v
	}
	m[dir] = mod
	return m
}

func TestCheckFindsEveryWayAGoModDisagreesWithTheVersionsFile(t *testing.T) {
	tests := []struct {
		name string
		mods map[string]string
		sum  string // mid/go.sum
		want string // "" when the check passes
	}{
		{"modules that agree pass", goodMods, "", ""},
		{"an old version", with("mid", goMod("mid", "require github.com/dislog/dislog/low v0.1.0")), "", "requires low v0.1.0, versions.yaml says v0.2.0"},
		{"the pseudo-version of before", with("mid", goMod("mid", "require github.com/dislog/dislog/low v0.0.0-00010101000000-000000000000")), "", "requires low v0.0.0-00010101000000-000000000000"},
		{"an arrow upward", with("low", goMod("low", "require github.com/dislog/dislog/mid v0.2.0")), "", "low/go.mod requires mid, which versions.yaml does not let it"},
		{"a module that requires the top", with("mid", goMod("mid", "require github.com/dislog/dislog/top v0.2.0")), "", "mid/go.mod requires top"},
		{"a replace", with("mid", goMod("mid", "require github.com/dislog/dislog/low v0.2.0", "replace github.com/dislog/dislog/low => ../low")), "", "mid/go.mod replaces github.com/dislog/dislog/low"},
		{"a sibling's go.sum line", goodMods, "github.com/dislog/dislog/low v0.2.0 h1:abc=\n", "mid/go.sum holds lines of sibling modules"},
		{"a module path that is not its directory", with("mid", "module example.com/mid\n"), "", "mid/go.mod: the module path is not"},
		{"an unknown sibling", with("mid", goMod("mid", "require github.com/dislog/dislog/other v0.2.0")), "", "requires github.com/dislog/dislog/other, which is not in versions.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			root := fakeRepo(t, tc.mods)
			if tc.sum != "" {
				is.NoErr(os.WriteFile(filepath.Join(root, "mid", "go.sum"), []byte(tc.sum), 0o644))
			}
			v, err := release.Load(root)
			is.NoErr(err)
			err = v.Check()
			if tc.want == "" {
				is.NoErr(err)
				return
			}
			is.True(errors.Is(err, release.ErrCheck))
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestCheckWantsGoWorkToReplaceEachModuleAtItsVersion(t *testing.T) {
	is := is.New(t)
	root := fakeRepo(t, goodMods)
	work := filepath.Join(root, "go.work")
	b, err := os.ReadFile(work)
	is.NoErr(err)
	is.NoErr(os.WriteFile(work, []byte(strings.Replace(string(b), "low v0.2.0 => ./low", "low v0.1.0 => ./low", 1)), 0o644))
	v, err := release.Load(root)
	is.NoErr(err)
	err = v.Check()
	is.True(errors.Is(err, release.ErrCheck))
	is.True(strings.Contains(err.Error(), "go.work does not replace github.com/dislog/dislog/low v0.2.0"))
}

func TestLoadRefusesABadVersionsFile(t *testing.T) {
	tests := []struct{ name, from, to string }{
		{"a version that is not semantic", "low:\n    version: v0.2.0", "low:\n    version: 0.2"},
		{"a major version past v1", "low:\n    version: v0.2.0", "low:\n    version: v2.0.0"},
		{"a cycle", "may-require: [low]", "may-require: [low, top]"},
		{"a module go.work does not use", "  top:", "  other:\n    version: v0.2.0\n  top:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRepo(t, goodMods)
			name := filepath.Join(root, "versions.yaml")
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.from) {
				t.Fatalf("versions.yaml lacks %q", tc.from)
			}
			if err := os.WriteFile(name, []byte(strings.Replace(string(b), tc.from, tc.to, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := release.Load(root); err == nil {
				t.Fatal("Load accepted it")
			}
		})
	}
}

func TestUpdateMakesGoModAndGoWorkAgree(t *testing.T) {
	is := is.New(t)
	root := fakeRepo(t, with("top", goMod("top",
		"require (", "\tgithub.com/dislog/dislog/low v0.0.0-00010101000000-000000000000", "\tgithub.com/dislog/dislog/mid v0.1.0", ")",
		"replace github.com/dislog/dislog/low => ../low")))
	v, err := release.Load(root)
	is.NoErr(err)
	is.True(v.Check() != nil)
	is.NoErr(v.SetVersion("v0.3.0"))
	changed, err := v.Update()
	is.NoErr(err)
	is.Equal(changed, []string{"go.work", "mid/go.mod", "top/go.mod"})
	is.NoErr(v.Check())
	again, err := release.Load(root) // the versions file says v0.3.0 too
	is.NoErr(err)
	is.NoErr(again.Check())
	top, err := os.ReadFile(filepath.Join(root, "top", "go.mod"))
	is.NoErr(err)
	is.True(strings.Contains(string(top), "github.com/dislog/dislog/mid v0.3.0"))
	is.True(!strings.Contains(string(top), "replace"))
}

// TestReleaseTagsEveryModuleInAClone runs a release of the real repository in a clone: versions
// set, go.mod files updated and committed, and a tag <dir>/<version> per module at that commit.
func TestReleaseTagsEveryModuleInAClone(t *testing.T) {
	is := is.New(t)
	clone := filepath.Join(t.TempDir(), "repo")
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = clone
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.com",
			"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "clone", "-q", repoRoot(t), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	v, err := release.Load(clone)
	is.NoErr(err)
	is.NoErr(v.Check()) // the committed tree agrees with its versions file

	is.NoErr(v.SetVersion("v0.3.0"))
	_, err = v.Tag()
	is.True(errors.Is(err, release.ErrCheck)) // go.mod files still say v0.2.0
	_, err = v.Update()
	is.NoErr(err)
	_, err = v.Tag()
	is.True(errors.Is(err, release.ErrDirty)) // the changes are not committed
	git("commit", "-q", "-a", "-m", "release: v0.3.0")
	tags, err := v.Tag()
	is.NoErr(err)
	is.Equal(len(tags), len(v.Modules))
	head := git("rev-parse", "HEAD")
	for _, m := range v.Modules {
		is.Equal(git("rev-parse", m.Dir+"/v0.3.0^{commit}"), head)
	}
	mod := git("show", "server/v0.3.0:server/go.mod")
	is.True(strings.Contains(mod, "github.com/dislog/dislog/raftlog v0.3.0"))
	_, err = v.Tag()
	is.True(err != nil) // the tags exist already
}
