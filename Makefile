# peer-registry — the two commands a newcomer needs:
#   make run    the main job on the default registry
#   make test   every test: Swift, C (valgrind), Python, Node, Go, MCP, CLI, browser, ...
SHELL := /bin/bash
SWIFT ?= swift
BUILD := build
LIB_SCRATCH := .build-lib
VERSION := 0.1.0
LIBDIR := $(BUILD)/lib
LIBFILE := $(LIBDIR)/libpeerregistry.so.$(VERSION)
LIB_FLAGS := -c release --product peerregistry --scratch-path $(LIB_SCRATCH) \
	-Xswiftc -static-stdlib -Xswiftc -use-ld=lld \
	-Xlinker --version-script=$(CURDIR)/Sources/CRegistry/peerregistry.map \
	-Xlinker -soname=libpeerregistry.so.0 -Xlinker -z -Xlinker defs
LIB_SOURCES := $(shell find Sources/RegistryKit Sources/CRegistry Sources/CRegistryShims Sources/CPeerRegistryHeader include -type f) Package.swift

.PHONY: bench all run lib test test-swift test-c test-python test-node test-go test-crowd test-mcp test-cli test-browser clean test-torture torture fuzz test-fuzz-corpus test-supervise bench-supervise

all: lib

## The main job: serve the default registry to browsers (status page at http://127.0.0.1:3001/).
run:
	$(SWIFT) run -c release peer-registry serve

## The self-contained C library, header and pkg-config file under build/.
lib: $(LIBFILE)

$(LIBFILE): $(LIB_SOURCES) Makefile
	$(SWIFT) build $(LIB_FLAGS)
	mkdir -p $(LIBDIR)/pkgconfig $(BUILD)/include
	cp $(LIB_SCRATCH)/release/libpeerregistry.so $@.tmp && strip --strip-unneeded $@.tmp && mv $@.tmp $@
	ln -sf libpeerregistry.so.$(VERSION) $(LIBDIR)/libpeerregistry.so.0
	ln -sf libpeerregistry.so.0 $(LIBDIR)/libpeerregistry.so
	cp include/peer_registry.h $(BUILD)/include/
	sed -e 's|@PREFIX@|$(CURDIR)/$(BUILD)|' -e 's|@VERSION@|$(VERSION)|' scripts/peerregistry.pc.in > $(LIBDIR)/pkgconfig/peerregistry.pc

test: test-swift test-c test-python test-node test-go test-crowd test-mcp test-cli test-browser test-torture test-fuzz-corpus test-supervise
	@echo "make test: every suite passed"

test-swift:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-c: lib
	bash tests/c/run.sh

test-python: lib
	bash bindings/python/run-tests.sh

test-node: lib
	bash bindings/node/run-tests.sh

test-go: lib
	bash bindings/go/run-tests.sh

## 24+ processes in Python, Node and Go (and Swift's crowd worker once test-swift built it) on
## one registry, some SIGKILLed mid-run; exactly the survivors' acknowledged entries remain.
test-crowd: lib
	bash tests/crowd/run.sh

## The MCP server (peer-registry mcp) driven by the official MCP Python SDK.
test-mcp: lib
	bash tests/mcp/run.sh

## The peer-registry CLI end to end: every subcommand, exit codes, a corrupt registry, watch, serve;
## then the servers against hostile clients (issue 13: a second local user, floods, stuck clients).
test-cli:
	$(SWIFT) build --product peer-registry
	python3 tests/cli/test_cli.py --bin "$$($(SWIFT) build --show-bin-path)/peer-registry"
	python3 tests/cli/test_servers.py --bin "$$($(SWIFT) build --show-bin-path)/peer-registry"

## peer-registry supervise end to end (docs/SUPERVISOR.md): real MCPServer stdio servers and
## misbehaving ones, the official MCP Python client over streamable HTTP, signals, /proc.
test-supervise:
	$(SWIFT) build --product peer-registry
	PEER_REGISTRY_BIN="$$($(SWIFT) build --show-bin-path)/peer-registry" bash tests/supervise/run.sh

## The supervisor's bridge vs a direct stdio session vs mcp-proxy (installed into build/bench-venv),
## 50 concurrent sessions, restart timings; writes its section of docs/BENCHMARKS.md.
bench-supervise:
	$(SWIFT) build -c release --product peer-registry
	python3 benchmarks/supervise/run.py --bin "$$($(SWIFT) build -c release --show-bin-path)/peer-registry"

## Headless chromium on the status page and a discovery.js page (installs chromium when root and
## missing); screenshots and SSE latency figures in build/test-browser/.
test-browser:
	$(SWIFT) build --product peer-registry
	python3 tests/browser/test_browser.py --bin "$$($(SWIFT) build --show-bin-path)/peer-registry"

## Benchmarks, each side by side with its floor or alternative: write latency (also under 4 and 16
## writers), reads after a foreign write, hand-written alternatives and their lost registrations,
## per-language call overhead, watch latency. Writes docs/BENCHMARKS.md and docs/register-cost.svg;
## sizes via environment variables (benchmarks/run.sh).
bench: lib
	bash benchmarks/run.sh

## Torture tests (tests/torture/run.py): writers crashing at every step of a write and SIGKILLed
## at random, stale lease/ttl/pid owners, symlinks, unsafe permissions, malformed input through
## every entry point. test-torture (part of make test) is the small run (under a minute);
## make torture is the large one (thousands of runs per section). TORTURE_SEED=N varies them.
test-torture: lib
	python3 tests/torture/run.py --size small

torture: lib
	python3 tests/torture/run.py --size large

## Fuzzing (fuzz/): libFuzzer + AddressSanitizer targets for the file decoder, the entry validator
## and the C ABI's JSON inputs, each run FUZZ_SECONDS (default 60); test-fuzz-corpus (part of
## make test) replays the checked-in corpus fuzz/corpus/ through the same targets.
fuzz:
	bash fuzz/run.sh

test-fuzz-corpus:
	bash fuzz/replay.sh

clean:
	rm -rf $(BUILD) .build $(LIB_SCRATCH)
