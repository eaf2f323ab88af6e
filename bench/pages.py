"""Page and API cost under gunicorn, against a one-query baseline in the same run.

    .venv/bin/python bench/pages.py                 # generates the data first if needed

Starts gunicorn with the production settings (plus the bench-only baseline view, see
bench/settings.py) on a free loopback port, signs a buyer and a seller in by writing sessions
into the database, and loads with `wrk` at 20 concurrent clients and then 5:

  * baseline   GET /_bench/baseline/           one query, same middleware stack
  * orders     GET /orders/                    the buyer's order list
  * case       GET /refunds/<id>/              the case page (the buyer)
  * dispute    GET /disputes/<id>/             the dispute page (the seller)
  * dashboard  GET /seller/                    the seller dashboard
  * api        GET /api/v1/refunds/<id>/       the refund API detail (the buyer)

Every request carries `X-Forwarded-Proto: https` and the session cookie of its viewer.
A route that is missing or failing is reported and skipped, never silently measured.
Budget, each route against the baseline in the same run at 5 clients: CPU per request
(gunicorn's workers plus the database's backends, from /proc) ≤ 8 × the baseline's, and p95
≤ 8 × the baseline's p95. The figures at 20 clients are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATABASE_URL, PYTHON, ROOT, load, machine, setup_django
from bench.generate import ensure

OUT = ROOT / "bench" / "out"
WORKERS = 2 * (os.cpu_count() or 1) + 1  # gunicorn's rule of thumb for sync workers
BUDGET = 8.0  # × the baseline, for CPU per request and for p95 at 5 clients

# wrk prints one JSON line at the end: throughput, latency percentiles, non-2xx and errors.
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %f, "p50_ms": %f, "p95_ms": %f, "p99_ms": %f, ' ..
    '"max_ms": %f, "non2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(conn_max_age: int, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        SECRET_KEY=secret_key,
        ALLOW_FAKE_GATEWAY="1",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"{DATABASE_URL}?conn_max_age={conn_max_age}",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


# --- who and what is asked for --------------------------------------------------------------


def signed_in(user: Any) -> tuple[str, str]:
    """A session for `user` written into the database: (cookie, session key)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.set_expiry(3600)
    store.create()
    assert store.session_key is not None
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}", store.session_key


def pick_subjects() -> dict[str, Any]:
    """A buyer with a realistic number of orders (about the 90th percentile) who has a case with
    a thread and a timeline; the seller of that case's shop (or, if that shop has no open
    dispute, of the first shop that has one) and one of their open disputes; and a signed-in
    session for the buyer and for the seller."""
    from django.db import connection

    from disputes.models import UNDECIDED_STATES, Dispute
    from orders.models import User
    from refunds.models import RefundCase

    with connection.cursor() as cursor:
        cursor.execute("""
            WITH per_buyer AS (SELECT buyer_id, count(*) AS n FROM orders_order GROUP BY 1),
                 p90 AS (SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY n) AS n
                         FROM per_buyer)
            SELECT b.buyer_id, b.n, p90.n
            FROM per_buyer AS b, p90
            WHERE b.n BETWEEN p90.n AND p90.n + 2
              AND EXISTS (SELECT 1 FROM refunds_refundcase AS c
                          JOIN orders_order AS o ON o.id = c.order_id
                          WHERE o.buyer_id = b.buyer_id AND c.state = 'return_shipped')
            ORDER BY b.buyer_id LIMIT 1
        """)
        row = cursor.fetchone()
    if row is None:  # small scales: anyone with a case
        case = RefundCase.objects.select_related("order").order_by("id").first()
        assert case is not None, "no refund case in the bench database"
        buyer = case.order.buyer
        orders, p90 = buyer.orders_bought.count(), None
    else:
        buyer = User.objects.get(pk=row[0])
        orders, p90 = row[1], row[2]
        case = (
            RefundCase.objects.filter(order__buyer=buyer, state="return_shipped")
            .select_related("order__shop")
            .order_by("id")
            .first()
        )
    assert case is not None
    open_disputes = Dispute.objects.filter(state__in=UNDECIDED_STATES).order_by("id")
    dispute = (
        open_disputes.filter(case__order__shop=case.order.shop_id).first()
        or open_disputes.select_related("case__order__shop").first()
    )
    assert dispute is not None, "no open dispute in the bench database"
    seller = dispute.case.order.shop.owner
    cookie, session_key = signed_in(buyer)
    seller_cookie, seller_session_key = signed_in(seller)
    return {
        "buyer": buyer.email,
        "orders": orders,
        "p90_orders": p90,
        "case": str(case.public_id),
        "case_state": case.state,
        "seller": seller.email,
        "seller_open_cases": RefundCase.objects.filter(
            order__shop__owner=seller,
            state__in=["requested", "offer_made", "awaiting_return", "return_shipped"],
        ).count(),
        "dispute": str(dispute.public_id),
        "dispute_state": dispute.state,
        "cookie": cookie,
        "seller_cookie": seller_cookie,
        "session_keys": [session_key, seller_session_key],
    }


def targets(subjects: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, path, cookie) of each route, the baseline first."""
    case, buyer, seller = subjects["case"], subjects["cookie"], subjects["seller_cookie"]
    return [
        ("baseline", "/_bench/baseline/", buyer),
        ("orders", "/orders/", buyer),
        ("case", f"/refunds/{case}/", buyer),
        ("dispute", f"/disputes/{subjects['dispute']}/", seller),
        ("dashboard", "/seller/", seller),
        ("api", f"/api/v1/refunds/{case}/", buyer),
    ]


# --- the server -------------------------------------------------------------------------------


def collectstatic(env: dict[str, str]) -> None:
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        str(Path(PYTHON).parent / "gunicorn"),
        "refundportal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "sync",
        "--timeout",
        "60",
        "--error-logfile",
        str(log),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"gunicorn did not listen on {port} within 30 s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def probe(base: str, path: str, cookie: str) -> tuple[int, str]:
    """One request before loading a route: it must answer 200 to the signed-in buyer."""
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1:<port> built above
        base + path,
        headers={
            "Cookie": cookie,
            "X-Forwarded-Proto": "https",
            "Accept": "text/html,application/json",
        },
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            body = response.read()
            return response.status, f"{len(body)} bytes"
    except urllib.error.HTTPError as exc:
        where = exc.headers.get("Location", "")
        return exc.code, f"→ {where}" if where else exc.read()[:200].decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


def wrk(url: str, cookie: str, clients: int, seconds: int, script: Path) -> dict[str, Any]:
    threads = min(2, clients)
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(clients),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        "-H",
        f"Cookie: {cookie}",
        "-H",
        "X-Forwarded-Proto: https",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def summarize(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds; each ratio is the median of each round's ratio to the baseline
    run in the same round, so a change of load on the machine between rounds cancels out."""
    med = statistics.median
    pairs = list(zip(runs, baseline, strict=True))
    return {
        "rps": med(r["rps"] for r in runs),
        "share": med(r["rps"] / b["rps"] for r, b in pairs),
        "cpu_ratio": med(
            (r["app_cpu_ms"] + r["db_cpu_ms"]) / max(1e-9, b["app_cpu_ms"] + b["db_cpu_ms"])
            for r, b in pairs
        ),
        "p95_ratio": med(r["p95_ms"] / max(1e-9, b["p95_ms"]) for r, b in pairs),
        "p50_ms": med(r["p50_ms"] for r in runs),
        "p95_ms": med(r["p95_ms"] for r in runs),
        "p99_ms": med(r["p99_ms"] for r in runs),
        "app_cpu_ms": med(r["app_cpu_ms"] for r in runs),
        "db_cpu_ms": med(r["db_cpu_ms"] for r in runs),
        "non2xx": sum(r["non2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "rounds": runs,
    }


def _ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def cpu_seconds(master: int) -> tuple[float, float]:
    """CPU time used so far by gunicorn's workers and by the bench database's backends: CPU per
    request does not depend on what else the machine is running, unlike requests/s."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        backends = [row[0] for row in cursor.fetchall()]
    hz = os.sysconf("SC_CLK_TCK")
    app = sum(_ticks(p) for p in _children(master)) / hz
    db = sum(_ticks(p) for p in backends) / hz
    return app, db


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seconds", type=int, default=15, help="per route and concurrency")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per concurrency")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--clients", default="20,5")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="persistent connections per worker (0: one per request)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    ensure(args.scale, quiet=True)
    # The session is signed, and the user's auth hash keyed, with SECRET_KEY: this process
    # writes the session with the key the server will check it with.
    secret_key = secrets.token_urlsafe(64)
    os.environ["SECRET_KEY"] = secret_key
    setup_django()
    subjects = pick_subjects()
    OUT.mkdir(parents=True, exist_ok=True)
    env = server_env(args.conn_max_age, secret_key)
    collectstatic(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = OUT / "gunicorn.log"
    print(f"machine: {machine()}")
    print(f"at start: {load()}")
    print(
        f"gunicorn: {WORKERS} sync workers on {base}, production settings, "
        f"CONN_MAX_AGE={args.conn_max_age}; wrk {args.seconds} s per route and concurrency "
        f"after a {args.warmup} s warm-up"
    )
    p90 = f" (90th percentile: {subjects['p90_orders']})" if subjects["p90_orders"] else ""
    print(
        f"buyer: {subjects['buyer']} with {subjects['orders']} orders{p90}; case "
        f"{subjects['case']} ({subjects['case_state']})\n"
        f"seller: {subjects['seller']} with {subjects['seller_open_cases']} open cases; "
        f"dispute {subjects['dispute']} ({subjects['dispute_state']})\n"
    )

    per_round = max(1, args.seconds // args.rounds)
    proc = start_gunicorn(env, port, log)
    report: dict[str, Any] = {
        "machine": machine(),
        "workers": WORKERS,
        "conn_max_age": args.conn_max_age,
        "subjects": {
            k: v
            for k, v in subjects.items()
            if k not in {"cookie", "seller_cookie", "session_keys"}
        },
        "runs": {},
    }
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(WRK_SCRIPT)
            script = Path(f.name)
        routes = []
        for name, path, cookie in targets(subjects):
            status, detail = probe(base, path, cookie)
            if status == 200:
                routes.append((name, path, cookie))
                print(f"  {name:<9} {path}  200 ({detail})")
            else:
                kind = "MISSING ROUTE" if status == 404 else f"FAILING ({status or 'no answer'})"
                print(f"  {name:<9} {path}  {kind}: {detail} — skipped")
                report["runs"][name] = {"skipped": f"{status} {detail}"}
        print()
        if not any(n == "baseline" for n, _p, _c in routes):
            sys.exit("the baseline view does not answer: nothing to compare against")
        for clients in (int(c) for c in args.clients.split(",")):
            print(
                f"{clients} concurrent clients ({args.rounds} rounds of {per_round} s, routes "
                f"interleaved; medians):"
            )
            for _name, path, cookie in routes:
                wrk(base + path, cookie, clients, args.warmup, script)
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _p, _c in routes}
            for _round in range(args.rounds):
                for name, path, cookie in routes:
                    before = cpu_seconds(proc.pid)
                    r = wrk(base + path, cookie, clients, per_round, script)
                    after = cpu_seconds(proc.pid)
                    r["app_cpu_ms"] = 1000 * (after[0] - before[0]) / max(1, r["requests"])
                    r["db_cpu_ms"] = 1000 * (after[1] - before[1]) / max(1, r["requests"])
                    rounds[name].append(r)
            results = {name: summarize(runs, rounds["baseline"]) for name, runs in rounds.items()}
            for name, r in results.items():
                bad = (
                    f"  {r['non2xx']} non-2xx, {r['socket_errors']} socket errors"
                    if r["non2xx"] or r["socket_errors"]
                    else ""
                )
                print(
                    f"  {name:<9} {r['rps']:7.1f} req/s  "
                    f"p50 {r['p50_ms']:6.1f}  p95 {r['p95_ms']:6.1f} ({r['p95_ratio']:4.1f} ×)  "
                    f"p99 {r['p99_ms']:6.1f} ms  CPU/request: app {r['app_cpu_ms']:5.2f} + "
                    f"db {r['db_cpu_ms']:4.2f} ms ({r['cpu_ratio']:4.1f} ×){bad}",
                    flush=True,
                )
            report["runs"][str(clients)] = results
            print()
    finally:
        stop(proc)
        from django.contrib.sessions.models import Session

        Session.objects.filter(session_key__in=subjects["session_keys"]).delete()

    print(
        f"budget at 5 clients: CPU per request ≤ {BUDGET:g} × the baseline's, p95 ≤ {BUDGET:g} × "
        "the baseline's p95 (ratios: medians of each round's ratio to the baseline)"
    )
    verdicts = []
    for name, _path, _cookie in targets(subjects)[1:]:
        at5 = report["runs"].get("5", {}).get(name)
        if at5 is None or "rps" not in at5:
            verdicts.append(f"  {name:<9} not measured at 5 clients ({report['runs'].get(name)})")
            continue
        cpu, p95 = at5["cpu_ratio"], at5["p95_ratio"]
        ok = cpu <= BUDGET and p95 <= BUDGET
        others = ", ".join(
            f"{clients} clients {runs[name]['cpu_ratio']:.1f} ×"
            for clients, runs in report["runs"].items()
            if clients != "5" and "rps" in runs.get(name, {})
        )
        verdicts.append(
            f"  {name:<9} at 5 clients: CPU/request {cpu:4.1f} ×, p95 {p95:4.1f} × "
            f"({at5['p95_ms']:.1f} ms) — {'within budget' if ok else 'OVER BUDGET'}"
            + (f" (CPU/request at {others})" if others else "")
        )
    print("\n".join(verdicts))
    print(f"at end: {load()}")
    (OUT / "pages.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
