"""Notification throughput: N notices through real Celery workers to a local SMTP sink.

    .venv/bin/python bench/notifications_throughput.py [--count 10000] [--workers 2]

What it starts (and stops again, whatever happens): a `redis-server` on a free port (no
persistence), an aiosmtpd SMTP sink on a free port that counts what it accepts, and `--workers`
Celery worker processes (prefork, one child each) against that Redis, with the SMTP backend
pointed at the sink. It uses the PostgreSQL database `refundportal_bench` (created if missing),
in a schema of its own (`search_path` set in the connection options), migrated at the start and
dropped at the end: the dispatcher fans out every undispatched event it can see, and the other
benchmarks leave theirs in that database, so sharing their tables would send their notices and
change their data.

What it measures: `count` events are committed (one notice each, half to a buyer, half to a
seller, mixed kinds with real deadlines), then one `notifications_dispatch` is queued, exactly
as the commit hook does. The clock runs from that moment until the sink has accepted the last
of the `count` emails, so it covers fan-out, queueing, rendering (text and HTML), the SMTP
exchange and the bookkeeping of every notice. Target: >= 500 notices/s with two workers.

It also accounts the CPU time each part used (the workers, Redis, this process with the SMTP
sink, and the PostgreSQL backends of the run, found by their application name): on a shared
machine the wall-clock rate says as much about the neighbours as about this code, and the CPU
per notice gives the rate the same work reaches on idle cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DATABASE_URL, DB_NAME, PYTHON, conninfo, django_env, machine  # noqa: E402

TARGET = 500.0  # notices per second with two workers

# A real `celery worker`, started through the project's Celery app, with one knob the project's
# settings do not have yet: Celery's Django fixup closes every database connection before and
# after each task unless CELERY_DB_REUSE_MAX is set, so a worker would reconnect to PostgreSQL
# for every notice (`--db-reuse-max 0` measures exactly that).
WORKER_BOOT = (
    "import sys, django; django.setup(); from django.conf import settings; "
    "reuse = int(sys.argv[1]); "
    "settings.CELERY_DB_REUSE_MAX = reuse or None; "
    "from refundportal.celery import app; app.worker_main(sys.argv[2:])"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


class Sink:
    """aiosmtpd handler: counts accepted messages and their distinct Message-IDs."""

    def __init__(self) -> None:
        self.count = 0
        self.message_ids: Counter[bytes] = Counter()
        self.last_at = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        start = content.find(b"Message-ID: ")
        if start >= 0:
            self.message_ids[content[start : content.find(b"\r\n", start)]] += 1
        self.count += len(envelope.rcpt_tos)
        self.last_at = time.perf_counter()
        return "250 2.0.0 Ok: queued"


class Processes:
    """Everything the benchmark started, stopped in reverse order on the way out."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.smtp: Any = None
        self.tmp = Path(tempfile.mkdtemp(prefix="rp-notify-bench-"))

    def start(self, name: str, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.smtp is not None:
            self.smtp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def redis(self) -> int:
        """A private redis-server on a free port, keeping nothing on disk: the broker of the
        benchmark's workers, apart from any Redis the machine runs."""
        port = free_port()
        self.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
        )
        wait_for_port(port)
        return port

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.tmp / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def schema_url(schema: str) -> str:
    options = quote(f"-c search_path={schema}")
    # Persistent connections: a worker runs thousands of short tasks. The application name
    # finds this run's PostgreSQL backends for the CPU account.
    return f"{DATABASE_URL}?conn_max_age=600&options={options}&application_name={schema}"


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def backend_pids(schema: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> "
            "pg_backend_pid()",
            [schema],
        )
        return [row[0] for row in cursor.fetchall()]


def create_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=django_env(DATABASE_URL=schema_url(schema)),
        check=True,
    )


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def clean_up(running: Processes, schema: str | None) -> None:
    """On the way out, whatever happened: the benchmark's connections, processes and schema."""
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()
    running.stop()
    if schema is not None:
        try:
            drop_schema(schema)
        except Exception as exc:
            print(f"dropping schema {schema} failed: {exc!r}")


def seed(count: int, tag: str) -> dict[str, Any]:
    """`count` committed events (one recipient each) on a fresh order of fresh accounts."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from notifications.catalog import sample_payload
    from orders.models import Event, Order, Shop, User

    now = timezone.now()
    buyer = User.objects.create_user(
        email=f"buyer-{tag}@bench-notify.test", name="Bench Buyer", time_zone="Europe/Berlin"
    )
    seller = User.objects.create_user(
        email=f"seller-{tag}@bench-notify.test",
        name="Bench Seller",
        time_zone="America/Los_Angeles",
    )
    shop = Shop.objects.create(
        owner=seller,
        slug=f"bench-notify-{tag}",
        name="Bench <Shop>",
        return_policy=timedelta(days=15),
    )
    order = Order.objects.create(
        number=f"BENCH-N-{tag}",
        buyer=buyer,
        shop=shop,
        currency="USD",
        total=Decimal("59.90"),
        payment_method="card",
        payment_reference=f"ch_{tag}",
        card_brand="Visa",
        card_last4="4242",
        placed_at=now,
        return_policy=shop.return_policy,
    )
    kinds = [
        ("refund.requested", "seller"),
        ("refund.offer_made", "buyer"),
        ("refund.accepted", "buyer"),
        ("refund.return_shipped", "seller"),
        ("payout.succeeded", "buyer"),
        ("message.posted", "seller"),
    ]
    users = {"buyer": buyer.pk, "seller": seller.pk}
    events = []
    for i in range(count):
        kind, role = kinds[i % len(kinds)]
        payload = sample_payload(kind)
        payload.update(order_number=order.number, notify={role: users[role]})
        events.append(Event(order=order, kind=kind, payload=payload, created_at=now))
    # bulk_create, not event_record: nothing is dispatched before the clock starts.
    Event.objects.bulk_create(events, batch_size=2000)
    return {"order": order, "users": [buyer, seller], "shop": shop}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=1,
        help="worker prefetch multiplier (default: the project's setting, 1)",
    )
    parser.add_argument(
        "--db-reuse-max",
        type=int,
        default=1000,
        help="CELERY_DB_REUSE_MAX of the workers (0: reconnect around every task)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    running = Processes()
    tag = uuid.uuid4().hex[:10]
    schema = f"notify_bench_{tag}"
    schema_created = False
    try:
        # --- services -------------------------------------------------------------------
        redis_port, smtp_port = running.redis(), free_port()
        from aiosmtpd.controller import Controller

        sink = Sink()
        running.smtp = Controller(sink, hostname="127.0.0.1", port=smtp_port)
        running.smtp.start()

        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = django_env(
            DATABASE_URL=schema_url(schema),
            REDIS_URL=redis_url,
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(smtp_port),
            STAFF_ALERT_EMAILS="",
            LOG_LEVEL="WARNING",
        )
        schema_created = True
        create_schema(schema)
        os.environ.update(env)
        import django

        django.setup()
        from notifications.tasks import notifications_dispatch
        from orders.models import Event
        from refundportal.celery import app

        rows = seed(args.count, tag)
        print(f"{args.count} events committed on order {rows['order'].number}")

        # --- workers --------------------------------------------------------------------
        for i in range(args.workers):
            running.start(
                f"worker{i}",
                [
                    PYTHON,
                    "-c",
                    WORKER_BOOT,
                    str(args.db_reuse_max),
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"bench-notify-{i}-{tag}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel",
                    "WARNING",
                    "--prefetch-multiplier",
                    str(args.prefetch),
                ],
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < args.workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not come up:\n" + running.log_tail("worker0"))

        # --- the run --------------------------------------------------------------------
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        workers = {name: proc.pid for name, proc in running.procs if name.startswith("worker")}
        redis_pid = next(proc.pid for name, proc in running.procs if name == "redis")
        cpu_before = {
            "workers": cpu_seconds([p for g in workers.values() for p in group_pids(g)]),
            "redis": cpu_seconds([redis_pid]),
            "bench + SMTP sink": sum(os.times()[:2]),
        }
        started = time.perf_counter()
        notifications_dispatch.delay()
        fanned_out_at = None
        limit = time.monotonic() + args.timeout
        while sink.count < args.count:
            if time.monotonic() > limit:
                raise RuntimeError(
                    f"only {sink.count} of {args.count} emails after "
                    f"{args.timeout:.0f} s\n{running.log_tail('worker0')}"
                )
            if (
                fanned_out_at is None
                and not Event.objects.filter(dispatched_at__isnull=True).exists()
            ):
                fanned_out_at = time.perf_counter()
            time.sleep(0.05)
        elapsed = sink.last_at - started
        cpu = {
            "workers": cpu_seconds([p for g in workers.values() for p in group_pids(g)])
            - cpu_before["workers"],
            "redis": cpu_seconds([redis_pid]) - cpu_before["redis"],
            "bench + SMTP sink": sum(os.times()[:2]) - cpu_before["bench + SMTP sink"],
            "PostgreSQL": cpu_seconds(backend_pids(schema)),
        }
        time.sleep(1.0)  # anything sent twice would arrive now

        from notifications.models import Notification, Status

        sent = Notification.objects.filter(status=Status.SENT).count()
        duplicates = sum(n - 1 for n in sink.message_ids.values() if n > 1)
        rate = args.count / elapsed
        print(f"machine: {machine()}")
        print(f"load average before the run: {load_before}")
        print(
            f"workers: {args.workers} × prefork(1), prefetch {args.prefetch}, "
            f"CELERY_DB_REUSE_MAX {args.db_reuse_max or 'unset'}; "
            f"redis :{redis_port}, SMTP sink :{smtp_port}, "
            f"database {DB_NAME} (schema {schema})"
        )
        if fanned_out_at is not None:
            print(f"fan-out of {args.count} events done after {fanned_out_at - started:.2f} s")
        print(
            f"{args.count} notices sent in {elapsed:.2f} s: {rate:.0f} notices/s "
            f"(target >= {TARGET:.0f}/s with two workers)"
        )
        print(f"accepted by the sink: {sink.count}; rows sent: {sent}; sent twice: {duplicates}")
        used = sum(cpu.values())
        print(
            "CPU per notice: "
            + ", ".join(f"{k} {v / args.count * 1000:.2f} ms" for k, v in cpu.items())
            + f"; total {used / args.count * 1000:.2f} ms "
            f"(the run had {used / elapsed:.2f} of {os.cpu_count()} cores; on idle cores "
            f"this work runs at about {args.count * (os.cpu_count() or 1) / used:.0f}/s)"
        )
        if not args.db_reuse_max:
            print("(PostgreSQL CPU is not counted: its backends exit with every task here)")
        ok = rate >= TARGET and sent == args.count and duplicates == 0
        print("PASS" if ok else "BELOW TARGET" if rate < TARGET else "FAIL")
        return 0 if ok else 1
    finally:
        clean_up(running, schema if schema_created else None)


if __name__ == "__main__":
    sys.exit(main())
