# Dislog workspace targets. Every module is listed in go.work; the targets below walk that list, so a new
# module needs nothing here beyond `go work use ./m`.

MODULES := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')
GOBIN   := $(shell go env GOPATH)/bin
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION  := v1.7.12
# dislog-release (tools/cmd/dislog-release) builds a module outside the workspace as its users do:
# the working tree's modules come from a module proxy it writes on disk (docs/RELEASING.md).
RELEASE := go run ./tools/cmd/dislog-release

.PHONY: all bin test test-short lint tidy tidy-check release release-update tools actionlint image test-deploy promtool-check $(addprefix test-,$(MODULES)) $(addprefix test-alone-,$(MODULES))

all: lint tidy-check test

# bin: the server, dislogctl and the tools' commands in ./bin (ignored by git).
bin:
	go build -o bin/ ./server/cmd/dislog ./client/cmd/dislogctl ./tools/cmd/dislog-certs ./tools/cmd/dislog-bench

# The whole workspace with the race detector: the command the README gives and .ci/run calls.
test:
	go test -race -count=1 -timeout 15m work
	@if docker info >/dev/null 2>&1; then $(MAKE) test-deploy; \
	else echo "test-deploy: DID NOT RUN: no Docker Engine answers (docker info failed); the container deployment is not proved"; fi

# The compose cluster across Docker hosts, under faults (tools/deploytest): needs a Docker Engine with Compose.
test-deploy: image
	cd tools && DISLOG_DEPLOY_TEST=1 go test -count=1 -timeout 10m -run TestAComposeCluster -v ./deploytest

test-short:
	go test -short -count=1 work

# test-<module>: one module alone, outside the workspace, the way a user of that module builds it:
# its siblings at the versions its go.mod requires, served from the working tree by a proxy on disk.
$(addprefix test-,$(MODULES)): test-%:
	$(RELEASE) run $* -- go test -race -count=1 ./...

# release VERSION=vX.Y.Z: set every module's version in versions.yaml, update the go.mod files and
# go.work, commit, and tag <module>/vX.Y.Z at that commit. Push the tags yourself.
release:
	@test "$(origin VERSION)" = "command line" || { echo "usage: make release VERSION=vX.Y.Z"; exit 1; }
	$(RELEASE) release $(VERSION)

# release-update: make the go.mod files and go.work agree with versions.yaml after editing it.
release-update:
	$(RELEASE) update

tools:
	@test -x $(GOBIN)/staticcheck || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@test -x $(GOBIN)/actionlint  || go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# staticcheck runs in the workspace (the same code; through dislog-release's proxy it compiled every
# dependency again, minutes on two cores). Building each module as its users do is make test-<module>'s job.
lint: tools
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet work
	$(RELEASE) check
	@for m in $(MODULES); do echo "staticcheck $$m"; (cd $$m && $(GOBIN)/staticcheck ./...) || exit 1; done
	$(GOBIN)/actionlint

# go mod tidy, outside the workspace, in every module. go.sum keeps no line of a sibling module:
# those hashes change with every commit of the tree (docs/RELEASING.md).
tidy:
	$(RELEASE) tidy

# go mod tidy must leave no diff in any module: it runs on copies of go.mod and go.sum, and only
# the go.sum lines of siblings, which are never committed, may differ.
tidy-check:
	$(RELEASE) tidy-check

# The container images, FROM scratch (deploy/docker/Dockerfile): static binaries built here with the local
# Go toolchain, then copied in; nothing is pulled. dislog:$(VERSION) and dislog-certs:$(VERSION), each also
# tagged latest.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_DIR := build/image
# The dislog image must stay under 40 MB: one binary, dislog, which is also dislogctl when called by that
# name (a link), about 29 MB stripped; the server's dev CA is crypto/x509, not cfssl. IMAGE_SIZE_STRICT=0
# reports an image over the limit instead of refusing it.
IMAGE_MAX_BYTES   := 40000000
IMAGE_SIZE_STRICT ?= 1

image:
	rm -rf $(IMAGE_DIR) && mkdir -p $(IMAGE_DIR)/empty
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(IMAGE_DIR)/ \
		./tools/cmd/dislog-certs
	mkdir -p $(IMAGE_DIR)/bin
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(IMAGE_DIR)/bin/ \
		./server/cmd/dislog
	ln -s dislog $(IMAGE_DIR)/bin/dislogctl
	cp deploy/docker/passwd deploy/docker/group $(IMAGE_DIR)/
	docker build -q -f deploy/docker/Dockerfile --target certs -t dislog-certs:$(VERSION) -t dislog-certs:latest $(IMAGE_DIR)
	docker build -q -f deploy/docker/Dockerfile --target dislog --build-arg VERSION=$(VERSION) \
		-t dislog:$(VERSION) -t dislog:latest $(IMAGE_DIR)
	@size=$$(docker image inspect -f '{{.Size}}' dislog:$(VERSION)); \
		echo "image: dislog:$(VERSION) $$size bytes, dislog-certs:$(VERSION) $$(docker image inspect -f '{{.Size}}' dislog-certs:$(VERSION)) bytes"; \
		if [ $$size -ge $(IMAGE_MAX_BYTES) ]; then \
			echo "image: dislog:$(VERSION) is over the limit of $(IMAGE_MAX_BYTES) bytes (40 MB)"; \
			[ "$(IMAGE_SIZE_STRICT)" = 0 ]; \
		fi

# The Prometheus alert rules (deploy/prometheus), checked and unit-tested with promtool. Without a promtool on
# the PATH, the one of Debian's (or Ubuntu's) prometheus package is unpacked into build/, without installing
# the package or starting anything.
PROMTOOL ?= $(or $(shell command -v promtool 2>/dev/null),$(CURDIR)/build/promtool/usr/bin/promtool)

promtool-check:
	@test -x $(PROMTOOL) || { mkdir -p build/promtool && cd build/promtool && rm -f prometheus_*.deb && \
		{ apt-get download prometheus 2>/dev/null || { $$([ $$(id -u) = 0 ] || echo sudo) apt-get update -qq && apt-get download prometheus; }; } && \
		dpkg -x prometheus_*.deb . ; }
	$(PROMTOOL) check rules deploy/prometheus/dislog-alerts.yml
	cd deploy/prometheus && $(PROMTOOL) test rules dislog-alerts_test.yml
