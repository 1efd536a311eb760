# The two commands: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= .agnes-data
PORT ?= 8888

.PHONY: run test lint bench system-deps clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(VENV)/bin/jupyter agnes quickstart --data-dir $(DATA_DIR) --port $(PORT)

# Debian's Chromium for browser tests and npm's posthog-js for the fake PostHog.
system-deps:
	@test -d tests/fakes/node_modules/posthog-js || \
	  npm install --no-save --no-audit --no-fund --silent --prefix tests/fakes posthog-js@1.449.2
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium"; exit 1; fi; }

test: $(VENV)/.test-installed system-deps
	$(PY) -m pytest

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check jupyter_agnes server_extension tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
