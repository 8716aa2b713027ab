# Strata: `make run` serves on the embedded default, `make test` runs the whole suite.
# Everything is installed by these targets; nothing needs installing by hand.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_BIN ?= /usr/lib/postgresql/15/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv lock api-baseline api-check run test fuzz check gen gen-check bench system-deps \
	clean ts-build ts-check

help:
	@echo "make run    serve on the embedded default (SQLite) at 127.0.0.1:50051 (LISTEN=host:port),"
	@echo "           with the web console at http://127.0.0.1:8080 (docs/console.md)"
	@echo "make test   the whole suite (starts its own PostgreSQL) on TEST_WORKERS (2) workers"
	@echo "make fuzz   the hostile-input suite at FUZZ_REQUESTS (100,000) requests, with a summary"
	@echo "make check  ruff, mypy, buf lint/breaking, generated code fresh, tsc (Node client)"
	@echo "make gen    regenerate the Python and TypeScript stubs, descriptor set and google/rpc protos"
	@echo "make lock   re-resolve requirements.lock after a dependency change, keeping locked"
	@echo "           versions (UPGRADE=1: upgrade everything, a deliberate step)"
	@echo "make api-baseline  publish the current proto/ as the breaking-change baseline"
	@echo "make bench  side-by-side benchmarks, written to bench/RESULTS.md"
	@echo "make ts-build  install (npm ci) and compile the Node client, clients/typescript"

# Installs only from requirements.lock: every package at its locked version and
# hash (--require-hashes, --no-deps: nothing is resolved here), then the two
# projects of this checkout in editable mode, built with the locked setuptools.
$(STAMP): requirements.lock pyproject.toml clients/python/pyproject.toml
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e clients/python -e .
	$(PY) -m pip check
	touch $@

venv: $(STAMP)

# The Node client (clients/typescript): `npm ci` from its committed
# package-lock.json is its only install step (it also brings protoc-gen-es for
# `make gen`); tsc, pinned there, compiles src/ to dist/ (the package: ES
# modules with .d.ts) and test/ to build/test. Neither output is committed.
NODE_DIR := clients/typescript
NODE_STAMP := $(NODE_DIR)/node_modules/.stamp
NODE_BUILT := $(NODE_DIR)/build/.stamp
TSC := node_modules/.bin/tsc
TS_SOURCES := $(shell find $(NODE_DIR)/src $(NODE_DIR)/test -name '*.ts' 2>/dev/null) \
	$(NODE_DIR)/tsconfig.json $(NODE_DIR)/test/tsconfig.json

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_BUILT): $(NODE_STAMP) $(TS_SOURCES)
	cd $(NODE_DIR) && rm -rf dist build && $(TSC) -p tsconfig.json && $(TSC) -p test/tsconfig.json
	touch $@

ts-build: $(NODE_BUILT)

# Compiling is the type check of src/ and test/; the examples are checked as
# they are (JavaScript, checkJs) against the built package, without emitting.
ts-check: $(NODE_BUILT)
	cd $(NODE_DIR) && $(TSC) -p examples/tsconfig.json --noEmit

# Re-resolve the development environment (uses the locked uv). Packages already
# locked keep their versions, so adding a dependency adds only it and what it needs;
# UPGRADE=1 upgrades everything (a commit of its own, with `make gen` when a
# generator moved).
UPGRADE ?=
lock: venv
	$(BIN)/uv pip compile --quiet $(if $(filter 1,$(UPGRADE)),--upgrade) --generate-hashes --no-header \
	  --annotation-style=line --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --no-emit-package strata-server --no-emit-package strata-client \
	  -o requirements.lock requirements.in
	@echo "requirements.lock re-resolved: review the diff, run make gen check test, commit"

# PostgreSQL 15 and Redis server binaries for the test fixtures and benchmarks,
# and Debian's chromium for the console's browser tests (Playwright drives it;
# no browser is downloaded).
system-deps:
	@if [ ! -x "$(PG_BIN)/initdb" ]; then \
	  echo "installing postgresql-15"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 >/dev/null; \
	fi
	@if ! command -v redis-server >/dev/null; then \
	  echo "installing redis-server"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  echo "installing chromium"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

# LISTEN=host:port picks the address (make run LISTEN=127.0.0.1:50052); without
# it, STRATA_LISTEN or the default 127.0.0.1:50051 applies.
LISTEN ?=
run: venv
	$(BIN)/strata migrate up
	$(BIN)/strata serve $(if $(LISTEN),--listen $(LISTEN))

# The suite on TEST_WORKERS pytest-xdist workers (tests/conftest.py says how they
# share the work); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: venv system-deps ts-build
	$(BIN)/pytest -x -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist worksteal

# The fuzz suite of `make test` (tests/fuzz, 10,000 requests over both shapes), run
# long: FUZZ_REQUESTS requests, FUZZ_SEED to explore other inputs than CI's. The
# summary at the end gives requests sent, answers by status code and by RPC, and the
# UNKNOWN/INTERNAL count (which must be 0).
FUZZ_REQUESTS ?= 100000
FUZZ_SEED ?= 0
fuzz: venv system-deps
	STRATA_FUZZ_REQUESTS=$(FUZZ_REQUESTS) STRATA_FUZZ_SEED=$(FUZZ_SEED) \
	  $(BIN)/pytest -q -p no:cacheprovider -m fuzz --timeout 7200 tests/fuzz

check: venv gen-check api-check ts-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The published strata.v1 API: lint, and compare with the committed baseline
# image, so a change that breaks callers (a renumbered field, a removed method)
# fails here. Needs only buf from the venv (tests run it in a copy of proto/).
API_BASELINE := proto/baseline/strata-v1.binpb
DESCRIPTORS := server/strata_server/api/descriptors.binpb
api-check:
	PATH=$(BIN):$$PATH buf lint
	PATH=$(BIN):$$PATH buf breaking --against $(API_BASELINE)
	@echo "buf breaking: nothing breaks against $(API_BASELINE)"

# Publish the current API as the new baseline: only on purpose, in its own commit.
api-baseline: venv
	mkdir -p $(dir $(API_BASELINE))
	PATH=$(BIN):$$PATH buf build --path proto/strata --exclude-source-info -o $(API_BASELINE)

# Everything generated from proto/ (tools/generate says what), committed, and
# checked for freshness by gen-check.
gen: venv $(NODE_STAMP)
	tools/generate . >/dev/null

gen-check: venv $(NODE_STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tools/generate "$$tmp" >/dev/null 2>&1; \
	stale=0; \
	diff -r -x __init__.py -x __pycache__ -x py.typed "$$tmp/clients/python/strata/v1" clients/python/strata/v1 || stale=1; \
	diff -r "$$tmp/proto/google" proto/google || stale=1; \
	diff -r "$$tmp/$(NODE_DIR)/src/gen" $(NODE_DIR)/src/gen || stale=1; \
	cmp "$$tmp/$(DESCRIPTORS)" $(DESCRIPTORS) || stale=1; \
	if [ $$stale = 1 ]; then echo "generated code is stale: run 'make gen' and commit the result"; exit 1; fi; \
	echo "generated code is fresh"

bench: venv system-deps ts-build
	$(PY) bench/records.py
	$(PY) bench/jobs.py
	$(PY) bench/transcripts.py
	$(PY) bench/archive.py
	$(PY) bench/cache.py
	$(PY) bench/cleanup.py
	$(PY) bench/search.py
	$(PY) bench/artifacts.py
	$(PY) bench/export.py
	$(PY) bench/auth.py
	$(PY) bench/typescript.py
	$(PY) bench/idle_streams.py
	$(PY) bench/workers.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache \
	  $(NODE_DIR)/node_modules $(NODE_DIR)/dist $(NODE_DIR)/build
