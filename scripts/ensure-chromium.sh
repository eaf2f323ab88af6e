#!/usr/bin/env bash
# Browser tests drive Debian's chromium (/usr/bin/chromium) through playwright; playwright never
# downloads a browser of its own here. Install chromium once when we can (root + apt-get);
# otherwise the browser tests skip themselves locally.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
# One attempt per virtualenv, so a machine without the package does not retry on every run.
MARKER="${VENV:-.venv}/.chromium-install-attempted"

if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: $CHROMIUM is missing and cannot be installed here (needs root and apt-get);" \
        "browser tests will skip. Install Debian's chromium package to run them." >&2
    exit 0
fi
if [[ -e "$MARKER" ]]; then
    echo "warning: $CHROMIUM is missing (an earlier install attempt failed; delete $MARKER to" \
        "retry); browser tests will skip." >&2
    exit 0
fi
touch "$MARKER"
echo "==> installing Debian's chromium for the browser tests (once)"
if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    echo "==> chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
    echo "warning: apt-get could not install chromium; browser tests will skip." >&2
fi
