package release

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// TidyCheck runs go mod tidy, outside the workspace, on a copy of the go.mod and go.sum of the
// module in dir, and fails if it changes anything but the go.sum lines of siblings (which are
// never committed): the check `go mod tidy -diff` makes, for modules whose siblings are not
// published.
func (s *Sandbox) TidyCheck(dir string) error {
	modfile, err := s.copyModFiles(dir)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "mod", "tidy", "-modfile="+modfile)
	cmd.Dir = filepath.Join(s.v.Root, dir)
	cmd.Env = append(os.Environ(), s.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release: go mod tidy in %s: %w\n%s", dir, err, out)
	}
	var problems []string
	for _, name := range []string{"go.mod", "go.sum"} {
		tidy, err := os.ReadFile(filepath.Join(filepath.Dir(modfile), name))
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		tree, err := os.ReadFile(filepath.Join(s.v.Root, dir, name))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("release: %w", err)
		}
		if name == "go.sum" {
			tidy = withoutSiblings(tidy)
		}
		if !bytes.Equal(tidy, tree) {
			problems = append(problems, fmt.Sprintf("go mod tidy changes %s/%s:\n%s", dir, name, lineDiff(tree, tidy)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("release: %s", strings.Join(problems, "\n"))
	}
	return nil
}

// Tidy runs go mod tidy, outside the workspace, on the module in dir, and removes from its go.sum
// the lines of siblings, which are never committed.
func (s *Sandbox) Tidy(dir string) error {
	if _, ok := s.v.Module(dir); !ok {
		return fmt.Errorf("release: no module %q in %s", dir, FileName)
	}
	cmd := exec.Command("go", "mod", "tidy")
	cmd.Dir = filepath.Join(s.v.Root, dir)
	cmd.Env = append(os.Environ(), s.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("release: go mod tidy in %s: %w\n%s", dir, err, out)
	}
	name := filepath.Join(s.v.Root, dir, "go.sum")
	sum, err := os.ReadFile(name)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.WriteFile(name, withoutSiblings(sum), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

func withoutSiblings(sum []byte) []byte {
	var out []byte
	for line := range bytes.Lines(sum) {
		if !bytes.HasPrefix(line, []byte(ModulePrefix)) {
			out = append(out, line...)
		}
	}
	return out
}

// lineDiff lists the lines only in a (-) and only in b (+), which is what go.mod and go.sum
// differences come to.
func lineDiff(a, b []byte) string {
	as := strings.Split(string(a), "\n")
	bs := strings.Split(string(b), "\n")
	var out []string
	for _, l := range as {
		if !slices.Contains(bs, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "  (the same lines in another order)"
	}
	return strings.Join(out, "\n")
}
