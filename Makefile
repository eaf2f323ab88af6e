# RefundPortal — the two commands a new checkout needs:
#
#   make run    the whole portal (web + Celery worker + Celery beat) on SQLite and the embedded
#               filesystem broker, with demo data; Ctrl-C stops it
#   make test   every check CI runs: ruff, mypy, migrations, Django checks and pytest (which
#               runs check --deploy and bandit); exits non-zero if any of them fails
#
# Both create .venv with python3.11 when it is missing and install the project with its dev extras.
# Tune pytest with PYTEST_ARGS (default `-n 2`), e.g. `make test PYTEST_ARGS="-x -k refunds"`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The interpreter that creates .venv (pyproject pins Python 3.11).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3.11)
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall only when the lock file changed since the last install (or with `make install`).
INSTALLED := $(VENV)/.refundportal-installed
# Every dependency, dev tools included, pinned with hashes (README, Dependencies); pyproject.toml
# holds the ranges the lock is compiled from (`make lock`).
LOCK := requirements-dev.lock
# Two workers: the suite grew past 15 minutes serially on a 2-core machine; it is safe in parallel
# (each worker has its own test database, broker tests their own redis-server).
PYTEST_ARGS ?= -n 2

export VENV PYTEST_ARGS

.PHONY: help run test install lock chromium lint format compose-config clean

help:
	@echo "make run             start web, Celery worker and beat on 127.0.0.1:8000 (Ctrl-C stops all)"
	@echo "make test            run every check (ruff, mypy, migrations, checks, pytest)"
	@echo "make install         (re)install the locked dependencies and dev tools into $(VENV)"
	@echo "make lock            recompile requirements.lock and $(LOCK) from pyproject.toml"
	@echo "make lint            ruff check + ruff format --check only"
	@echo "make format          ruff format + ruff check --fix"
	@echo "make compose-config  validate docker-compose.yml (needs docker-compose)"
	@echo "make clean           remove caches, collected static files and the demo database"

$(PY):
	$(PYTHON) -m venv $(VENV)

# --require-hashes: a package whose bytes differ from the ones locked is refused, not installed.
$(INSTALLED): $(LOCK) | $(PY)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	touch $@

# The runtime lock (the image installs it) and the dev lock (make and CI), from pyproject's ranges.
# --upgrade-package NAME (in LOCK_ARGS) moves one package; without it pins stay where they are.
LOCK_ARGS ?=
PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
# It needs only pip-tools, so it also works before the first lock exists.
lock: | $(PY)
	test -x $(VENV)/bin/pip-compile || $(PY) -m pip install --quiet 'pip-tools>=7.4'
	$(PIP_COMPILE) --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev --output-file $(LOCK) pyproject.toml

install:
	rm -f $(INSTALLED)
	$(MAKE) --no-print-directory $(INSTALLED)

chromium:
	bash scripts/ensure-chromium.sh

run: $(INSTALLED)
	bash scripts/run.sh

test: $(INSTALLED) chromium
	bash scripts/test.sh

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(INSTALLED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

compose-config:
	SECRET_KEY=$${SECRET_KEY:-compose-config-only} docker-compose config -q

clean:
	rm -rf staticfiles .mypy_cache .ruff_cache .pytest_cache refundportal.egg-info
	rm -f var/db.sqlite3 var/db.sqlite3-wal var/db.sqlite3-shm var/celerybeat-schedule*
	rm -rf var/broker
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
