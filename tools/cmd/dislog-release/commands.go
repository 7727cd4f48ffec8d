package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/dislog/dislog/tools/internal/release"
	"github.com/spf13/cobra"
)

func newCommand() *cobra.Command {
	var root, sandbox string
	cmd := &cobra.Command{
		Use:           "dislog-release",
		Short:         "Check, version, tag and build the repository's modules as their users do",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&root, "root", "", "the repository's root (default: the nearest directory up with "+release.FileName+")")
	cmd.PersistentFlags().StringVar(&sandbox, "sandbox", "", "the sandbox directory: proxy, module cache (default: in the user cache directory, one per repository)")
	load := func() (*release.Versions, error) {
		r, err := findRoot(root)
		if err != nil {
			return nil, err
		}
		return release.Load(r)
	}
	open := func(v *release.Versions) (*release.Sandbox, error) {
		dir := sandbox
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256([]byte(v.Root))
			dir = filepath.Join(cache, "dislog-release", hex.EncodeToString(sum[:6]))
		}
		return v.OpenSandbox(dir)
	}

	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Fail unless every go.mod agrees with " + release.FileName,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			if err := v.Check(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "release check: %d modules agree with %s\n", len(v.Modules), release.FileName)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "update",
		Short: "Rewrite the go.mod files to the versions of " + release.FileName,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			changed, err := v.Update()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated: %v\n", changed)
			return v.Check()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "release VERSION",
		Short: "Set every module to VERSION, update the go.mod files, commit and tag <dir>/VERSION",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			if out, err := git(v.Root, "status", "--porcelain"); err != nil || out != "" {
				return errors.Join(release.ErrDirty, err)
			}
			if err := v.SetVersion(args[0]); err != nil {
				return err
			}
			if _, err := v.Update(); err != nil {
				return err
			}
			if err := v.Check(); err != nil {
				return err
			}
			if out, _ := git(v.Root, "status", "--porcelain"); out != "" {
				if _, err := git(v.Root, "commit", "-a", "-m", "release: "+args[0]); err != nil {
					return err
				}
			}
			tags, err := v.Tag()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tagged %v; push them with: git push origin %s\n", tags, joinArgs(tags))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "tag",
		Short: "Tag every module <dir>/<version> at HEAD",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			tags, err := v.Tag()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tagged %v\n", tags)
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "proxy DIR",
		Short: "Write a module proxy of the working tree into DIR (for GOPROXY=file://DIR)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			return v.WriteProxy(args[0])
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "run MODULE -- COMMAND [ARG...]",
		Short: "Run a command in MODULE outside the workspace, with the working tree's modules from a proxy",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			s, err := open(v)
			if err != nil {
				return err
			}
			defer s.Close()
			env, err := s.ModuleEnv(args[0])
			if err != nil {
				return err
			}
			c := exec.Command(args[1], args[2:]...)
			c.Dir = filepath.Join(v.Root, args[0])
			c.Env = append(os.Environ(), env...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			return c.Run()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "tidy [MODULE...]",
		Short: "Run go mod tidy on modules (all of them by default) outside the workspace",
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				for _, m := range v.Modules {
					args = append(args, m.Dir)
				}
			}
			s, err := open(v)
			if err != nil {
				return err
			}
			defer s.Close()
			for _, dir := range args {
				if err := s.Tidy(dir); err != nil {
					return err
				}
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "tidy-check [MODULE...]",
		Short: "Fail if go mod tidy would change a module (all of them by default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := load()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				for _, m := range v.Modules {
					args = append(args, m.Dir)
				}
			}
			s, err := open(v)
			if err != nil {
				return err
			}
			defer s.Close()
			var errs []error
			for _, dir := range args {
				errs = append(errs, s.TidyCheck(dir))
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "tidy-check: ok")
			return nil
		},
	})
	return cmd
}

// findRoot returns dir, or the nearest directory up from the current one that has versions.yaml.
func findRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, release.FileName)); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no %s in %s or above it (give --root)", release.FileName, wd)
		}
	}
}

func git(dir string, args ...string) (string, error) {
	c := exec.Command("git", args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %v: %w\n%s", args, err, out)
	}
	return string(out), nil
}

func joinArgs(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
