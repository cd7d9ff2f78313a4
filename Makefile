# peer-registry — the two commands a newcomer needs:
#   make run    the main job on the default registry
#   make test   every test: Swift, C (valgrind), Python, Node, Go, MCP, CLI, browser, ...
SHELL := /bin/bash
SWIFT ?= swift
BUILD := build
LIB_SCRATCH := .build-lib
VERSION := $(shell cat VERSION)
LIBDIR := $(BUILD)/lib
LIBFILE := $(LIBDIR)/libpeerregistry.so.$(VERSION)
LIB_FLAGS := -c release --product peerregistry --scratch-path $(LIB_SCRATCH) \
	-Xswiftc -static-stdlib -Xswiftc -use-ld=lld \
	-Xlinker --version-script=$(CURDIR)/Sources/CRegistry/peerregistry.map \
	-Xlinker -soname=libpeerregistry.so.0 -Xlinker -z -Xlinker defs
LIB_SOURCES := $(shell find Sources/RegistryKit Sources/CRegistry Sources/CRegistryShims Sources/CPeerRegistryHeader include -type f) Package.swift VERSION

.PHONY: bench all run lib install uninstall dist dist-python dist-node test-install test test-version test-swift test-c test-python test-node test-go test-conformance test-examples test-crowd test-mcp test-cli test-browser clean test-torture torture fuzz test-fuzz-corpus test-coarse test-legacy test-supervise bench-supervise test-agent bench-agent test-gateway bench-gateway

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
	scripts/make-pc.sh $(CURDIR)/$(BUILD) $(CURDIR)/$(LIBDIR) $(CURDIR)/$(BUILD)/include $(VERSION) > $(LIBDIR)/pkgconfig/peerregistry.pc

## make install [PREFIX=/usr/local] [DESTDIR=stage]: the library with its SONAME links, the
## header, a pkg-config file for PREFIX and the peer-registry CLI (a release build, unless
## PEER_REGISTRY_CLI names an already built binary, as test-install does with test-cli's build).
PREFIX ?= /usr/local
DESTDIR ?=
bindir ?= $(PREFIX)/bin
libdir ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
PEER_REGISTRY_CLI ?=

install: lib
	@case "$(PREFIX)" in /*) ;; *) echo "make install: PREFIX must be an absolute path, not '$(PREFIX)'" >&2; exit 2;; esac
	@cli="$(PEER_REGISTRY_CLI)"; \
	if [ -z "$$cli" ]; then \
		$(SWIFT) build -c release --product peer-registry && \
		cli="$$($(SWIFT) build -c release --show-bin-path)/peer-registry" || exit 1; \
	fi; \
	[ -x "$$cli" ] || { echo "make install: $$cli is not an executable peer-registry" >&2; exit 2; }; \
	set -e -x; \
	install -d -m 0755 "$(DESTDIR)$(libdir)/pkgconfig" "$(DESTDIR)$(includedir)" "$(DESTDIR)$(bindir)"; \
	install -m 0755 $(LIBFILE) "$(DESTDIR)$(libdir)/libpeerregistry.so.$(VERSION)"; \
	ln -sfn libpeerregistry.so.$(VERSION) "$(DESTDIR)$(libdir)/libpeerregistry.so.0"; \
	ln -sfn libpeerregistry.so.0 "$(DESTDIR)$(libdir)/libpeerregistry.so"; \
	install -m 0644 include/peer_registry.h "$(DESTDIR)$(includedir)/peer_registry.h"; \
	scripts/make-pc.sh "$(PREFIX)" "$(libdir)" "$(includedir)" $(VERSION) > "$(DESTDIR)$(libdir)/pkgconfig/peerregistry.pc"; \
	chmod 0644 "$(DESTDIR)$(libdir)/pkgconfig/peerregistry.pc"; \
	install -m 0755 "$$cli" "$(DESTDIR)$(bindir)/peer-registry"
	@# A system prefix: refresh the loader cache so libpeerregistry.so.0 is found at once.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && { [ "$(libdir)" = /usr/local/lib ] || [ "$(libdir)" = /usr/lib ]; }; then ldconfig; fi

uninstall:
	rm -f "$(DESTDIR)$(libdir)/libpeerregistry.so.$(VERSION)" "$(DESTDIR)$(libdir)/libpeerregistry.so.0" \
		"$(DESTDIR)$(libdir)/libpeerregistry.so" "$(DESTDIR)$(libdir)/pkgconfig/peerregistry.pc" \
		"$(DESTDIR)$(includedir)/peer_registry.h" "$(DESTDIR)$(bindir)/peer-registry"

## make dist: the packages into build/dist/ (the Python wheel and the npm tarball, each with the library inside).
dist: dist-python dist-node

dist-python: lib
	python3 bindings/python/build_wheel.py $(LIBFILE) $(BUILD)/dist

## The npm tarball build/dist/peer-registry-$(VERSION).tgz: a prebuilt addon and the library for
## this platform inside, `npm install ./peer-registry-$(VERSION).tgz` works offline.
NODE_TARBALL := $(BUILD)/dist/peer-registry-$(VERSION).tgz
NODE_PACKAGE_FILES := $(addprefix bindings/node/,package.json index.js index.mjs index.d.ts \
	promises.js promises.mjs promises.d.ts README.md src/addon.c include/peer_registry.h build.sh install.js pack.sh)

dist-node: $(NODE_TARBALL)

$(NODE_TARBALL): $(LIBFILE) $(NODE_PACKAGE_FILES)
	bash bindings/node/pack.sh $(LIBFILE) $(BUILD)/dist

test: test-version test-swift test-c test-python test-node test-go test-conformance test-examples test-crowd test-mcp test-cli test-browser test-install test-torture test-legacy test-coarse test-supervise test-agent test-gateway test-fuzz-corpus
	@echo "make test: every suite passed"

## The version: VERSION is the one source; every copy (header, Swift, package metadata) agrees
## (scripts/version.sh --set X.Y.Z writes them all), and the bindings' copies of the header are identical to it.
test-version:
	bash scripts/version.sh --check

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

## tests/conformance/cases.json (registration, filters, resolution, health, TTL with an injected
## clock, legacy entries, bad input) through the Swift, C, Python, Node and Go runners: every
## case must pass in each, and all five must print the same results.
test-conformance: lib
	SWIFT=$(SWIFT) bash tests/conformance/run.sh

## The Node and Go example MCP servers, found through the registry and driven by the official
## MCP Python SDK's streamable HTTP client.
test-examples: lib
	bash tests/examples/run.sh

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
## misbehaving ones, the official MCP Python client over streamable HTTP and legacy SSE, signals, /proc.
test-supervise:
	$(SWIFT) build --product peer-registry
	PEER_REGISTRY_BIN="$$($(SWIFT) build --show-bin-path)/peer-registry" bash tests/supervise/run.sh

## peer-registry agent (docs/CLUSTER.md) on a real 3-member etcd cluster started on loopback
## ports (installs etcd-server when missing): publish/withdraw, scope, loopback rewrite, SIGKILL of
## an agent and of an etcd member, etcd fully down and back, 1,000 entries over 3 nodes.
test-agent: lib
	$(SWIFT) build --product peer-registry
	$(SWIFT) build --product registry-crowd-worker
	PEER_REGISTRY_BIN="$$($(SWIFT) build --show-bin-path)/peer-registry" \
		PEER_REGISTRY_WORKER="$$($(SWIFT) build --show-bin-path)/registry-crowd-worker" bash tests/cluster/run.sh

## The cluster agent's timings (release build): register on A → visible on B (list and watch,
## p50/p99), agent SIGKILL → gone elsewhere, resync after an etcd outage at 1,000 entries; writes
## its section of docs/BENCHMARKS.md.
bench-agent:
	$(SWIFT) build -c release --product peer-registry
	$(SWIFT) build -c release --product registry-crowd-worker
	python3 benchmarks/cluster/run.py --bin "$$($(SWIFT) build -c release --show-bin-path)/peer-registry" \
		--worker "$$($(SWIFT) build -c release --show-bin-path)/registry-crowd-worker"

## peer-registry gateway end to end (docs/GATEWAY.md): real MCPServer backends (streamable HTTP and
## legacy SSE) registered through the Python binding and SIGKILLed, the official MCP Python client over stdio and HTTP.
test-gateway: lib
	$(SWIFT) build --product peer-registry
	PEER_REGISTRY_BIN="$$($(SWIFT) build --show-bin-path)/peer-registry" PEER_REGISTRY_LIB="$(CURDIR)/$(LIBDIR)/libpeerregistry.so" bash tests/gateway/run.sh

## The gateway vs direct calls to the same backends, 50 sessions, registration -> list_changed,
## memory per idle session; writes its section of docs/BENCHMARKS.md.
bench-gateway: lib
	$(SWIFT) build -c release --product peer-registry
	PEER_REGISTRY_LIB="$(CURDIR)/$(LIBDIR)/libpeerregistry.so" python3 benchmarks/gateway/run.py --bin "$$($(SWIFT) build -c release --show-bin-path)/peer-registry"

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

## Installed outside the repository, as a user would (tests/install/run.sh): make install into a
## temp prefix + a C program built with pkg-config + the installed CLI; the wheel in a fresh venv.
## Reuses test-cli's debug build of the CLI instead of a release build of all its dependencies.
test-install: lib dist
	$(SWIFT) build --product peer-registry
	PEER_REGISTRY_CLI="$$($(SWIFT) build --show-bin-path)/peer-registry" bash tests/install/run.sh

## Benchmarks, each side by side with its floor or alternative: write latency (also under 4 and 16
## writers), reads after a foreign write, hand-written alternatives and their lost registrations,
## per-language call overhead, watch latency. Writes docs/BENCHMARKS.md and docs/register-cost.svg;
## sizes via environment variables (benchmarks/run.sh).
bench: lib
	SWIFT="$(SWIFT)" bash benchmarks/run.sh

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

## The library beside seed 000's unlocked in-place writers (3 processes, 8 s): no ECORRUPT, every
## held entry restored (anti-entropy); prints the figures.
test-legacy: lib
	PEER_REGISTRY_LIB=$(CURDIR)/$(LIBDIR)/libpeerregistry.so PYTHONPATH=$(CURDIR)/bindings/python/src \
		python3 tests/legacy/legacy_test.py

## The registry on a loop-mounted ext4 with 1-second mtimes (needs root): lost writes, stale
## reads, missed watch events; the crowd and kill tests there too.
test-coarse: lib
	bash tests/coarse/run.sh

test-fuzz-corpus:
	bash fuzz/replay.sh

clean:
	rm -rf $(BUILD) .build $(LIB_SCRATCH)
