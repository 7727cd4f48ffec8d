// Command dislog-release keeps the repository's modules releasable and builds them as their users
// do. Run it from anywhere in the repository (`go run ./tools/cmd/dislog-release` at the root; the
// Makefile's release, tidy-check and test-<module> targets call it).
//
//	dislog-release check                  go.mod files agree with versions.yaml; arrows one way
//	dislog-release update                 rewrite go.mod files to versions.yaml
//	dislog-release release v0.3.0         set every version, update, commit, tag <dir>/v0.3.0
//	dislog-release tag                    tag every module at HEAD at its version
//	dislog-release proxy DIR              write a module proxy of the working tree into DIR
//	dislog-release run MODULE -- CMD...   run CMD in MODULE, outside the workspace, against that proxy
//	dislog-release tidy-check [MODULE...] go mod tidy would change nothing
//
// See docs/RELEASING.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dislog-release:", err)
		os.Exit(1)
	}
}
