# Dislog workspace targets. Every module is listed in go.work; the targets below walk that list, so a new
# module needs nothing here beyond `go work use ./m`.

MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')
GOBIN   := $(shell go env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION  := v1.7.12
# dislog-release (tools/cmd/dislog-release) builds a module outside the workspace as its users do:
# the working tree's modules come from a module proxy it writes on disk (docs/RELEASING.md).
RELEASE := go run ./tools/cmd/dislog-release

.PHONY: all test test-short lint tidy tidy-check release release-update tools actionlint $(addprefix test-,$(MODULES)) $(addprefix test-alone-,$(MODULES))

all: lint tidy-check test

# The whole workspace with the race detector: the command the README gives and .ci/run calls.
test:
	go test -race -count=1 -timeout 15m work

test-short:
	go test -short work

# test-<module>: one module alone, outside the workspace, the way a user of that module builds it:
# its siblings at the versions its go.mod requires, served from the working tree by a proxy on disk.
$(addprefix test-,$(MODULES)): test-%:
	$(RELEASE) run $* -- go test -race -count=1 ./...

# release VERSION=vX.Y.Z: set every module's version in versions.yaml, update the go.mod files and
# go.work, commit, and tag <module>/vX.Y.Z at that commit. Push the tags yourself.
release:
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=vX.Y.Z"; exit 1; }
	$(RELEASE) release $(VERSION)

# release-update: make the go.mod files and go.work agree with versions.yaml after editing it.
release-update:
	$(RELEASE) update

tools:
	@test -x $(GOBIN)/staticcheck || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/actionlint  || go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: tools
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet work
	$(RELEASE) check
	@for m in $(MODULES); do echo "staticcheck $$m"; $(RELEASE) run $$m -- $(GOBIN)/staticcheck ./... || exit 1; done
	$(GOBIN)/actionlint

# go mod tidy, outside the workspace, in every module. go.sum keeps no line of a sibling module:
# those hashes change with every commit of the tree (docs/RELEASING.md).
tidy:
	$(RELEASE) tidy

# go mod tidy must leave no diff in any module: it runs on copies of go.mod and go.sum, and only
# the go.sum lines of siblings, which are never committed, may differ.
tidy-check:
	$(RELEASE) tidy-check
