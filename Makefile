# Dislog workspace targets. Every module is listed in go.work; the targets below walk that list, so a new
# module needs nothing here beyond `go work use ./m`.

MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')
GOBIN   := $(shell go env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION  := v1.7.12

.PHONY: all bin test test-short lint tidy-check tools actionlint $(addprefix test-,$(MODULES)) $(addprefix test-alone-,$(MODULES))

all: lint tidy-check test

# bin: the server, dislogctl and the tools' commands in ./bin (ignored by git).
bin:
	go build -o bin/ ./server/cmd/dislog ./client/cmd/dislogctl ./tools/cmd/dislog-certs ./tools/cmd/dislog-bench

# The whole workspace with the race detector: the command the README gives and .ci/run calls.
test:
	go test -race -count=1 -timeout 15m work

test-short:
	go test -short -count=1 work

# test-<module>: one module alone, outside the workspace, the way a user of that module builds it.
$(addprefix test-,$(MODULES)): test-%:
	cd $* && GOWORK=off go test -race ./...

tools:
	@test -x $(GOBIN)/staticcheck || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/actionlint  || go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

lint: tools
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet work
	@for m in $(MODULES); do echo "staticcheck $$m"; (cd $$m && GOWORK=off $(GOBIN)/staticcheck ./...) || exit 1; done
	$(GOBIN)/actionlint

# go mod tidy must leave no diff in any module (-diff prints the change and fails, touching nothing).
tidy-check:
	@for m in $(MODULES); do (cd $$m && GOWORK=off go mod tidy -diff) || { echo "go mod tidy changes $$m"; exit 1; }; done
	@echo "tidy-check: ok"
