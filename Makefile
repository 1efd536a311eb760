# The two commands: `make run` and `make test` (`make test-unit` for the fast tests). Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_VENV := .venv-run
DATA_DIR ?= .agnes-data
PORT ?= 8888

.PHONY: run hub hub-deps test test-unit test-notebooks lint bench system-deps clean mutation

# What `make run` installs: the package and its runtime dependencies, nothing else. A pattern
# rule, so the notebook check below builds $(RUN_VENV) by exactly the same recipe.
%/.installed: pyproject.toml
	test -x $*/bin/python || $(PYTHON) -m venv $*
	$*/bin/python -m pip install -q --upgrade pip
	$*/bin/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(VENV)/bin/jupyter agnes quickstart --data-dir $(DATA_DIR) --port $(PORT)

# The analysts' servers run as their own Unix users, who cannot read root's home (where the
# default python3 may live): their venv comes from Debian's Python, beside the checkout.
USER_VENV := .venv-user
SYSTEM_PYTHON ?= /usr/bin/python3
$(USER_VENV)/.user-installed: pyproject.toml
	test -x $(USER_VENV)/bin/python || $(SYSTEM_PYTHON) -m venv $(USER_VENV) || \
	  { echo "needs Debian's venv: apt-get install python3-venv"; exit 1; }
	$(USER_VENV)/bin/python -m pip install -q --upgrade pip
	$(USER_VENV)/bin/python -m pip install -q -e . "jupyterhub>=6" ipykernel
	chmod -R a+rX $(USER_VENV)
	touch $@

# JupyterHub with the Agnes service (the team deployment's first part), set up like `make run`.
HUB_PORT ?= 8000
CHP := .hub-node/node_modules/.bin/configurable-http-proxy
# What it needs besides the package: the proxy and the analysts' venv (docs/deploy.md's step 1).
hub-deps: $(VENV)/.installed $(CHP) $(USER_VENV)/.user-installed
hub: hub-deps
	$(VENV)/bin/jupyter agnes hub --quickstart --data-dir $(DATA_DIR) --port $(HUB_PORT)

# Debian's Chromium (browser tests) and PostgreSQL (store tests); npm's posthog-js (fake PostHog)
# and configurable-http-proxy (JupyterHub's proxy; `jupyter agnes hub` finds it in .hub-node).
APT_PACKAGES := chromium postgresql
$(CHP):
	npm install --no-save --no-audit --no-fund --silent --prefix .hub-node configurable-http-proxy@5

system-deps: $(CHP)
	@test -d tests/fakes/node_modules/posthog-js || \
	  npm install --no-save --no-audit --no-fund --silent --prefix tests/fakes posthog-js@1.449.2
	@if ! command -v chromium >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else echo "missing: sudo apt-get install $(APT_PACKAGES)"; exit 1; fi; fi

# Unit, server, kernel, browser and postgres tests with the test extras; then every shipped
# notebook through nbval in `make run`'s environment, where a test-only package cannot help it pass.
# The browser test of the first hour (tests/browser/test_first_hour.py) runs `make run`'s
# quickstart from $(RUN_VENV) too, so it is built first.
NBVAL := --nbval-lax --nbval-kernel-name agnes --nbval-sanitize-with notebooks/nbval_sanitize.cfg
test: $(VENV)/.test-installed $(RUN_VENV)/.runner-installed system-deps $(USER_VENV)/.user-installed
	$(PY) -m pytest tests
	$(MAKE) test-notebooks

# $(RUN_VENV) = `make run`'s install plus a test runner only (versions as in the test extra).
RUN_ENV_RUNNER := "pytest>=8" "nbval>=0.11" "pytest-timeout>=2.3"
$(RUN_VENV)/.runner-installed: $(RUN_VENV)/.installed
	$(RUN_VENV)/bin/python -m pip install -q $(RUN_ENV_RUNNER)
	touch $@

test-notebooks: $(RUN_VENV)/.runner-installed
	$(RUN_VENV)/bin/python -m pytest -p no:cacheprovider notebooks $(NBVAL)

# The fast in-process tests only (tests/unit): no servers, kernels or browsers.
test-unit: $(VENV)/.test-installed
	$(PY) -m pytest tests/unit

# Mutation testing of the security core (before a release; not part of `make test` or CI):
# prints the score and every survivor, fails below 95 %. MUTANTS='jupyter_agnes.auth.pat.*'
# narrows it to one module; results and mutmut's copy of the code stay in mutants/.
MUTANTS ?=
$(VENV)/.mutation-installed: $(VENV)/.test-installed
	$(PY) -m pip install -q -e ".[test,mutation]"
	touch $@

mutation: $(VENV)/.mutation-installed
	$(PY) tests/mutation/run.py $(MUTANTS)

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check jupyter_agnes server_extension tests benchmarks

clean:
	rm -rf $(VENV) $(RUN_VENV) $(USER_VENV) .pytest_cache mutants
