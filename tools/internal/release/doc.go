// Package release keeps the repository's modules releasable: versions.yaml lists each module's
// version and the siblings it may require; [Versions.Check] holds every go.mod to it (real
// versions, no replace, arrows only downward, nothing requires tools), [Versions.Update] rewrites
// the go.mod files after a version changes, and [Versions.Tag] makes the tags <dir>/<version>.
//
// The modules are not published, so a go.mod that requires github.com/dislog/dislog/storelog
// v0.2.0 cannot be built outside the workspace from the public proxy. A [Sandbox] builds what a
// user of a release would get: a module proxy on disk made from the working tree at the versions
// of versions.yaml (module zips as golang.org/x/mod/zip makes them, with .info and .mod files),
// and a module cache of its own, emptied of Dislog modules each time, so a build never uses an
// older copy of the tree. [Sandbox.ModuleEnv] is the environment that builds one module alone the
// way its users build it: GOWORK=off, the sandbox's proxy first and then the usual one, the
// checksum database off for github.com/dislog/dislog only, and the module's go.mod and go.sum
// copied aside (-modfile) so that the go.sum lines of siblings, which change with every commit of
// the tree and are therefore never committed, are added to the copy and not to the repository.
package release
