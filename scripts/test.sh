#!/usr/bin/env bash
# make test: every check CI runs (.ci/run calls `make test` after starting PostgreSQL and Redis).
# Every check runs even when an earlier one failed, so one run shows every problem; the exit
# status is non-zero if any failed. pytest runs last so its summary closes the output.
set -uo pipefail # no -e: each check's status is collected below

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
# The venv first on PATH: tests that start their own Celery worker find the same interpreter.
export PATH="$PWD/$VENV/bin:$PATH"
# manage.py and pytest each choose their own settings; a value left in the shell must not win.
unset DJANGO_SETTINGS_MODULE
# STATICFILES_DIRS names static/, which git does not keep while it is empty (staticfiles.W004).
mkdir -p static var

failed=()
run_check() {
    local name="$1"
    shift
    echo
    echo "==> $name"
    "$@"
    local rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "--> $name: ok"
        return
    fi
    if [[ "$name" == pytest && $rc -eq 5 ]]; then
        echo "--> pytest collected no test: that counts as a failure"
    fi
    echo "--> $name: FAILED (exit $rc)"
    failed+=("$name")
}

run_check "ruff check" ruff check .
run_check "ruff format" ruff format --check .
run_check "mypy" mypy .
run_check "migrations complete" python manage.py makemigrations --check --dry-run
run_check "django check" python manage.py check
# `check --deploy` (production settings) and bandit run inside pytest, in
# tests/security/test_deploy.py, so each check runs once and a failure fails the pytest run.
# PYTEST_ARGS is split on spaces on purpose: `make test PYTEST_ARGS="-n 2 -x"` (the Makefile
# sets `-n 2` when it is not given).
# shellcheck disable=SC2086
run_check "pytest" pytest -p no:cacheprovider ${PYTEST_ARGS:-}

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'make test: FAILED checks:'
    printf ' [%s]' "${failed[@]}"
    echo
    exit 1
fi
echo "make test: every check succeeded"
