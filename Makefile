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

.PHONY: help venv lock api-baseline run test check gen gen-check bench system-deps clean

help:
	@echo "make run    serve on the embedded default (SQLite) at 127.0.0.1:50051"
	@echo "make test   the whole suite (starts its own PostgreSQL)"
	@echo "make check  ruff, mypy, buf lint/breaking, generated code fresh"
	@echo "make gen    regenerate the Python stubs from proto/"
	@echo "make bench  side-by-side benchmarks, written to bench/RESULTS.md"

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

# Re-resolve the development environment on purpose (an upgrade is a commit of
# its own, with `make gen` when a generator moved). Uses the locked uv.
lock: venv
	$(BIN)/uv pip compile --quiet --upgrade --generate-hashes --no-header \
	  --annotation-style=line --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --no-emit-package strata-server --no-emit-package strata-client \
	  -o requirements.lock requirements.in
	@echo "requirements.lock re-resolved: review the diff, run make gen check test, commit"

# PostgreSQL 15 and Redis server binaries for the test fixtures and benchmarks.
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

run: venv
	$(BIN)/strata migrate up
	$(BIN)/strata serve --listen 127.0.0.1:50051

test: venv system-deps
	$(BIN)/pytest -x -q -p no:cacheprovider

check: venv gen-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PATH=$(BIN):$$PATH buf lint
	@if git rev-parse --verify -q main >/dev/null && git cat-file -e main:proto 2>/dev/null; then \
	  PATH=$(BIN):$$PATH buf breaking --against '.git#branch=main' && echo "buf breaking: nothing breaks against main"; \
	else echo "buf breaking: no proto/ on main yet, nothing to compare"; fi

gen: venv
	PATH=$(BIN):$$PATH buf generate

gen-check: venv
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH=$(BIN):$$PATH buf generate -o "$$tmp"; \
	if ! diff -r -x __init__.py -x __pycache__ -x py.typed "$$tmp/clients/python/strata/v1" clients/python/strata/v1 >/dev/null; then \
	  echo "generated code is stale: run 'make gen' and commit the result"; exit 1; fi; \
	echo "generated code is fresh"

bench: venv system-deps
	@$(PY) -c 'import procrastinate' 2>/dev/null || $(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/records.py
	$(PY) bench/jobs.py
	$(PY) bench/transcripts.py
	$(PY) bench/cache.py
	$(PY) bench/cleanup.py
	$(PY) bench/artifacts.py
	$(PY) bench/export.py
	$(PY) bench/idle_streams.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
