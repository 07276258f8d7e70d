# onexd — the two commands a newcomer needs are `make demo` and `make test`. Both are idempotent.
# They install what is missing (a venv; Debian's docker.io, mmdebstrap and busybox-static), start dockerd
# when no engine answers, and build the runner images offline.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
HOST_PACKAGES := docker.io mmdebstrap busybox-static
DOCKERD_LOG ?= /var/log/onexd-dockerd.log

.PHONY: demo test lint unit host-deps engine images bench bench-policy bench-runtime bench-daemon bench-audit generate clean

# A venv with the pinned dependencies, reinstalled when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

host-deps:
	@missing=""; for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	  || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  [ "$$(id -u)" = 0 ] || { echo "missing Debian packages:$$missing (run as root, or install them)"; exit 1; }; \
	  echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The engine onexd runs jobs on: the one answering on the default socket, or a dockerd we start.
engine: host-deps $(STAMP)
	@if ! $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1; then \
	  echo "starting dockerd (log: $(DOCKERD_LOG))"; \
	  nohup /usr/sbin/dockerd >$(DOCKERD_LOG) 2>&1 & \
	  for i in $$(seq 1 60); do $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1 && break; sleep 1; done; \
	  $(BIN)/python -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1 \
	    || { echo "dockerd did not come up; see $(DOCKERD_LOG)"; tail -20 $(DOCKERD_LOG); exit 1; }; \
	fi

images: engine
	$(BIN)/onexd image build

demo: images
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: lint images
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check onexd tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not docker"

bench: bench-policy bench-runtime bench-daemon bench-audit

bench-policy: $(STAMP)
	$(BIN)/python bench/bench_policy.py

bench-runtime: images
	$(BIN)/python bench/bench_runtime.py

bench-daemon: images
	$(BIN)/python bench/bench_daemon.py

bench-audit: $(STAMP)
	$(BIN)/python bench/bench_audit.py
	$(BIN)/python bench/audit_crash.py 100

# Regenerate what is derived from the code (tests fail when these drift).
generate: $(STAMP)
	$(BIN)/onexd policy schemas --out schemas
	$(BIN)/onexd policy rules > docs/rules.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
