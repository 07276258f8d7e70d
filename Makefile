# onexd — the two commands a newcomer needs are `make demo` and `make test`. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: demo test lint unit bench bench-policy generate clean

# A venv with the pinned dependencies, reinstalled when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: lint unit

lint: $(STAMP)
	$(BIN)/ruff check onexd tests bench
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: bench-policy

bench-policy: $(STAMP)
	$(BIN)/python bench/bench_policy.py

# Regenerate what is derived from the code (tests fail when these drift).
generate: $(STAMP)
	$(BIN)/onexd policy schemas --out schemas
	$(BIN)/onexd policy rules > docs/rules.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
