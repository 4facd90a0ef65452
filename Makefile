# hapair: two-node HA pair for PostgreSQL appliances.
#   make demo   run a whole pair on this machine (agents + PostgreSQL on loopback)
#   make test   run every test (installs what it needs first)
SHELL := /bin/bash
GO ?= go
PG_BINDIR ?= /usr/lib/postgresql/15/bin
BIN := bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
TOOLS := $(CURDIR)/.tools
TEST_TIMEOUT ?= 20m

.PHONY: all build test test-unit demo proto lint bench deps check-deps clean

all: build

## deps: check or install what building and testing need (Go modules,
## PostgreSQL 15, the OpenSSH client).
deps: check-deps
	$(GO) mod download

check-deps:
	@scripts/ensure-deps.sh postgres ssh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/hactl ./cmd/hactl

## test: every test, with the real PostgreSQL. Needs no setup beyond `make`.
test: deps lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-unit: only the fast tests that need no PostgreSQL.
test-unit:
	$(GO) test -count=1 -short ./...

## demo: a pair of agents, primary-node and secondary-node, on loopback.
demo: deps build
	@scripts/demo.sh

## proto: regenerate the committed gRPC code (installs its generators itself).
proto:
	@scripts/ensure-deps.sh protoc
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(TOOLS):$$PATH protoc -I hactl/hapb -I /usr/include \
		--go_out=hactl/hapb --go_opt=paths=source_relative \
		--go-grpc_out=hactl/hapb --go-grpc_opt=paths=source_relative \
		hactl/hapb/hactl.proto

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench: scripted scenarios on real agents and PostgreSQL (planned stop, lost
## Active node); results are reported as metrics, see docs/benchmarks.md.
BENCHTIME ?= 10x
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m ./...

clean:
	rm -rf $(BIN) $(TOOLS)
