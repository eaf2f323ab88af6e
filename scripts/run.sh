#!/usr/bin/env bash
# make run: the whole portal on one machine with no server to install — Django's runserver, two
# Celery workers (the default queue, and the payout queue on threads) and Celery beat, on SQLite (var/db.sqlite3) and Celery's filesystem broker
# (var/broker/) unless DATABASE_URL / REDIS_URL say otherwise. Ctrl-C stops all three.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
export PATH="$PWD/$VENV/bin:$PATH"
export DJANGO_SETTINGS_MODULE=refundportal.settings.base
export DEBUG=1
export PYTHONUNBUFFERED=1
HOST=127.0.0.1
PORT="${WEB_PORT:-8000}"
URL="http://$HOST:$PORT"
STOP_GRACE_SECONDS=20

echo "==> database: ${DATABASE_URL:-SQLite file var/db.sqlite3}"
echo "==> broker:   ${REDIS_URL:+Redis $REDIS_URL}${REDIS_URL:-filesystem broker under var/broker/}"

if ! python - "$HOST" "$PORT" <<'PY'; then
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((sys.argv[1], int(sys.argv[2])))
    except OSError:
        sys.exit(1)
PY
    echo "error: $HOST:$PORT is already in use (another make run?). Stop it or set WEB_PORT." >&2
    exit 1
fi

# STATICFILES_DIRS names static/, which git does not keep while it is empty.
mkdir -p static var
python manage.py migrate --noinput
# seed_demo is idempotent. While seeding, the console email backend prints every email it sends;
# they go to the log file and only the closing summary (the demo logins) to the terminal.
echo "==> seeding demo data (full output: var/seed_demo.log)"
if ! python manage.py seed_demo >var/seed_demo.log 2>&1; then
    tail -n 40 var/seed_demo.log >&2
    echo "error: manage.py seed_demo failed; full output in var/seed_demo.log" >&2
    exit 1
fi
# What seed_demo printed after the last email (the console backend ends each with 79 dashes).
seed_summary() {
    awk 'length($0) == 79 && /^-+$/ { n = 0; next } { line[++n] = $0 } END { for (i = 1; i <= n; i++) print line[i] }' \
        var/seed_demo.log | { grep -v '^AXES: ' || true; } | sed '/./,$!d'
}
seed_summary | sed 's/^/   /'
python manage.py collectstatic --noinput --verbosity 0

# Each process runs in its own session and process group, so the terminal's Ctrl-C reaches only
# this script, which then stops them in order. The Celery worker gets SIGTERM on its main process
# alone: signalling its pool children too can deadlock billiard's warm shutdown. Output goes
# through a prefixing sed that lives outside the group and ignores INT/TERM, so the last log
# lines of a stopping process still come out.
declare -A NAMES=()
PIDS=()
start() {
    local name="$1"
    shift
    setsid "$@" > >(trap '' INT TERM; exec sed -u "s/^/$(printf '%-6s' "$name")| /") 2>&1 &
    NAMES[$!]="$name"
    PIDS+=("$!")
}

stopping=0
stop_all() {
    [[ $stopping -eq 1 ]] && return
    stopping=1
    trap '' INT TERM
    echo
    echo "==> stopping web, workers and beat"
    local pid
    for pid in "${PIDS[@]}"; do
        if [[ "${NAMES[$pid]}" == worker || "${NAMES[$pid]}" == payout ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        else
            kill -TERM -- "-$pid" 2>/dev/null || true
        fi
    done
    local deadline=$((SECONDS + STOP_GRACE_SECONDS))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.2
        done
    done
    # Whatever is left (runserver's reloader child, orphaned pool processes) goes now.
    for pid in "${PIDS[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "==> stopped"
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

start web python manage.py runserver "$HOST:$PORT"
start worker celery -A refundportal worker --queues celery -l info --concurrency 2
# Payouts have their own queue and a threads pool: each waits on the gateway, not the CPU
# (docs/architecture.md, Tasks and beat). Few threads: SQLite takes one writer at a time.
start payout celery -A refundportal worker --queues payouts --pool threads -l info --concurrency 4
start beat celery -A refundportal beat -l info -s var/celerybeat-schedule

# Announce the portal once the web process answers (any HTTP status counts as up).
announced=0
for _ in $(seq 1 60); do
    if python -c "import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass" "$URL/" 2>/dev/null; then
        cat <<BANNER

================================================================================
 RefundPortal is running (web, Celery workers, Celery beat). Ctrl-C stops them all.
   portal:   $URL/
   admin:    $URL/admin/
   API docs: $URL/api/docs/
 Demo logins (from manage.py seed_demo; full output in var/seed_demo.log):
$(seed_summary | sed 's/^/   /')
================================================================================

BANNER
        announced=1
        break
    fi
    kill -0 "${PIDS[0]}" 2>/dev/null || break
    sleep 0.5
done

if [[ $announced -eq 0 ]]; then
    echo "warning: $URL/ did not answer within 30 s; see the web log above" >&2
fi

# Stop everything as soon as any one of them ends on its own.
set +e
wait -n "${PIDS[@]}"
rc=$?
echo "==> a process exited (status $rc); stopping the others"
exit "$rc"
