# PackCloud: `make run` (local stack with a demo) and `make test` (the whole suite) on a fresh machine.
# Every target installs what it needs, idempotently.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHECKOV := .venv-checkov/bin/checkov
REGION ?=

.PHONY: run test unit lint bench fuzz load deps chromium checkov deploy clean show purge deliver attachments audit-verify bot-pattern

deps: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

checkov: $(CHECKOV)

$(CHECKOV): infra/requirements-checkov.txt
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check -r infra/requirements-checkov.txt
	@touch $@

# DEBUG=1: the local host logs at DEBUG, e.g. why each pixel hit was or was not recorded (a code, never a value).
run: deps
	$(if $(DEBUG),DEVHOST_LOG_LEVEL=debug) $(PY) -m devenv.run

# ruff, then the import contract of pyproject.toml (the layers of shared/ point down only), then the types
# (mypy, strict, over shared/, functions/, devhost/ and function_app.py: [tool.mypy] in pyproject.toml).
lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

# pytest exits 5 when it collected no test: that is not a failure of the suite.
# Both tiers: tests/unit first (seconds), then tests/integration (Azurite, hosts, Chromium, checkov), on
# TEST_WORKERS pytest-xdist workers (one per core of CI's machine), each with its own Azurite, host and secrets
# file; a file's tests stay on one worker (--dist loadfile), so a module's own fixtures start once.
TEST_WORKERS ?= 2
test: deps chromium checkov lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The fast tier alone: pure logic, no Azurite, host, browser or network (tests/unit/conftest.py refuses them).
unit: deps
	$(PY) -m pytest -q tests/unit; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

bench: deps
	$(PY) -m bench

# The long fuzz run (make test runs a bounded one): 1,000 generated requests per route, each with valid and wrong keys.
fuzz: deps
	PACKCLOUD_FUZZ_EXAMPLES=$${PACKCLOUD_FUZZ_EXAMPLES:-1000} $(PY) -m pytest -q tests/integration/test_fuzz.py

# A mixed load (70% pixel, 20% forms, 5% auto-number, 5% geo-login) for a set time, then a reconciliation with
# what storage holds; e.g. `make load LOAD_SECONDS=60 LOAD_CONCURRENCY=64 LOAD_TENANTS=8`.
LOAD_SECONDS ?= 30
LOAD_CONCURRENCY ?= 32
LOAD_TENANTS ?= 4
load: deps
	$(PY) -m bench.load --seconds $(LOAD_SECONDS) --concurrency $(LOAD_CONCURRENCY) --tenants $(LOAD_TENANTS)

# The documented commands, in the project's environment (a system Python lacks its packages). Each reads
# local.settings.json (the one `make run` writes) unless the setting is exported; DRY_RUN=1 changes nothing.
TENANT ?= demo
show: deps
	$(PY) -m devenv.show $(TENANT)

purge: deps
	$(PY) -m shared.purge $(if $(DRY_RUN),--dry-run)

deliver: deps
	$(PY) -m shared.cli deliver $(if $(DRY_RUN),--dry-run)

attachments: deps
	$(PY) -m shared.cli attachments $(if $(DRY_RUN),--dry-run)

audit-verify: deps
	$(PY) -m shared.audit verify $(TENANT)

# The bot matcher's data (plain-text patterns, a small expression), made from the pinned crawler-user-agents list (README, "Bots").
bot-pattern: deps
	$(PY) -m shared.capture.bot_list

deploy:
	@test -n "$(REGION)" || { echo "usage: make deploy REGION=us|br|eu|ea"; exit 2; }
	infra/deploy.sh $(REGION)

clean:
	rm -rf $(VENV) .venv-checkov node_modules .azurite .state .pytest_cache .ruff_cache .import_linter_cache .mypy_cache
