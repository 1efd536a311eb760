# The two commands: `make run` and `make test` (`make test-unit` for the fast tests). Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= .agnes-data
PORT ?= 8888

.PHONY: run test test-unit lint bench system-deps clean

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

# Debian's Chromium (browser tests) and PostgreSQL (store tests); npm's posthog-js (fake PostHog).
APT_PACKAGES := chromium postgresql
system-deps:
	@test -d tests/fakes/node_modules/posthog-js || \
	  npm install --no-save --no-audit --no-fund --silent --prefix tests/fakes posthog-js@1.449.2
	@if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else echo "missing: sudo apt-get install $(APT_PACKAGES)"; exit 1; fi; fi

# One pytest run: unit, server, kernel, browser and postgres tests, then every notebook through nbval.
NBVAL := --nbval-lax --nbval-kernel-name agnes --nbval-sanitize-with notebooks/nbval_sanitize.cfg
test: $(VENV)/.test-installed system-deps
	$(PY) -m pytest tests notebooks $(NBVAL)

# The fast in-process tests only (tests/unit): no servers, kernels or browsers.
test-unit: $(VENV)/.test-installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check jupyter_agnes server_extension tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
