"""Payout throughput at network speed: payouts through real Celery workers to a local Stripe.

    .venv/bin/python bench/payouts_throughput.py [--count 2000] [--workers 2] [--threads 32]

What it starts (and stops again, whatever happens): a `redis-server` on a free port (no
persistence), the local server that speaks Stripe's wire format (`tests/payouts/stripe_server.py`,
in this process) with the Stripe gateway pointed at it, and `--workers` Celery worker processes
started with production's payout-worker command (`celery -A refundportal worker --queues payouts
--pool threads --concurrency N`, docs/architecture.md, Tasks and beat). Like the notification
benchmark it uses the PostgreSQL database `refundportal_bench` in a schema of its own, migrated
at the start and dropped at the end.

What it measures, twice in the same run: `count` card orders cancelled with a pending payout
each are written in bulk (nothing queued), then one `payout_send` per payout is published, as the
commit hook does; the clock runs from the first publish until every payout has succeeded. First
with the server answering at once, then with it answering after 300 ms, Stripe's quickest. The
issue's budget: with 300 ms the workers reach >= 80 % of the rate they reach without it (waiting
is not what limits payouts); >= 100 payouts/s on a quiet machine is the aim, reported, not judged
(machines of this kind differ by up to 4 x in CPU speed). Each payout must be paid exactly once
on the server's own ledger: one refund per payout key, for the payout's amount.

A short untimed warm-up first lets every worker thread open its database connection and its
HTTP session, so neither phase pays for them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DB_NAME, PYTHON, django_env, load, machine  # noqa: E402
from bench.notifications_throughput import (  # noqa: E402
    Processes,
    backend_pids,
    clean_up,
    cpu_seconds,
    create_schema,
    group_pids,
    schema_url,
)

RATIO_BUDGET = 0.80  # rate at 300 ms ÷ rate at 0 ms
AIM = 100.0  # payouts/s on a quiet machine: reported, not judged
LATENCY = 0.3
STRIPE_KEY = "sk_test_" + "bench0payouts0" * 2


def worker_command(threads: int, name: str) -> list[str]:
    """Production's payout worker (docker-compose.yml, scripts/run.sh), quieter."""
    return [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "refundportal",
        "worker",
        "--queues",
        "payouts",
        "--pool",
        "threads",
        "--concurrency",
        str(threads),
        "--hostname",
        name,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]


def seed(count: int, tag: str, phase: str) -> list[int]:
    """`count` cancelled card orders, each with its pending payout of the whole total; no task
    is queued (the phase publishes them when its clock starts)."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order, OrderStatus, Shop, User
    from payouts.models import Payout

    now = timezone.now()
    with transaction.atomic():
        buyer = User.objects.create_user(
            email=f"buyer-{phase}-{tag}@bench-payouts.test", name="Bench Buyer"
        )
        seller = User.objects.create_user(
            email=f"seller-{phase}-{tag}@bench-payouts.test", name="Bench Seller"
        )
        shop = Shop.objects.create(
            owner=seller,
            slug=f"bench-payouts-{phase}-{tag}",
            name="Bench Shop",
            return_policy=timedelta(days=15),
        )
        total = Decimal("59.90")
        orders = Order.objects.bulk_create(
            [
                Order(
                    number=f"BENCH-P-{phase}-{tag}-{i}",
                    buyer=buyer,
                    shop=shop,
                    currency="USD",
                    total=total,
                    reserved=total,
                    payment_method="card",
                    payment_reference=f"pi_{phase}{tag}{i}",
                    card_brand="Visa",
                    card_last4="4242",
                    placed_at=now,
                    cancelled_at=now,
                    cancel_reason="buyer_cancelled",
                    return_policy=shop.return_policy,
                    status=OrderStatus.CANCELLED,
                )
                for i in range(count)
            ],
            batch_size=2000,
        )
        payouts = Payout.objects.bulk_create(
            [
                Payout(
                    order=order,
                    amount=total,
                    currency="USD",
                    payment_method="card",
                    payment_reference=order.payment_reference,
                    idempotency_key=f"cancel:{order.number}",
                    purpose="cancel",
                )
                for order in orders
            ],
            batch_size=2000,
        )
    return [p.pk for p in payouts]


def send_all(ids: list[int], timeout: float) -> float:
    """Publish one `payout_send` per payout and wait until all have succeeded: seconds taken."""
    from payouts.models import Payout, PayoutStatus
    from payouts.tasks import payout_send
    from refundportal.celery import app

    mine = Payout.objects.filter(pk__gte=min(ids), pk__lte=max(ids))
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for pk in ids:
            payout_send.apply_async((pk,), producer=producer)
    limit = time.monotonic() + timeout
    while True:
        done = mine.filter(status=PayoutStatus.SUCCEEDED).count()
        if done == len(ids):
            return time.perf_counter() - started
        failed = mine.exclude(status=PayoutStatus.PENDING).exclude(status=PayoutStatus.SUCCEEDED)
        if failed.exists():
            reason = failed.values_list("failure_reason", flat=True).first()
            raise RuntimeError(f"{failed.count()} payouts did not succeed: {reason}")
        if time.monotonic() > limit:
            raise RuntimeError(f"only {done} of {len(ids)} payouts after {timeout:.0f} s")
        time.sleep(0.02)


def paid_once(ledger: list[Any], ids: list[int]) -> list[str]:
    """What the server's ledger says against "each payout paid exactly once": problems, if any."""
    from payouts.gateway import stripe_amount
    from payouts.models import Payout

    problems = []
    refunds = Counter(r.idempotency_key for r in ledger)
    by_key = {r.idempotency_key: r for r in ledger}
    payouts = Payout.objects.filter(pk__in=ids).only(
        "idempotency_key", "amount", "currency", "public_id", "gateway_reference"
    )
    for payout in payouts:
        key = payout.idempotency_key
        if refunds[key] != 1:
            problems.append(f"{key}: {refunds[key]} refunds")
            continue
        refund = by_key[key]
        if refund.amount != stripe_amount(payout.amount, payout.currency):
            problems.append(f"{key}: refunded {refund.amount}, owed {payout.amount}")
        if refund.metadata.get("payout") != str(payout.public_id):
            problems.append(f"{key}: metadata names payout {refund.metadata.get('payout')}")
        if refund.id != payout.gateway_reference:
            problems.append(f"{key}: payout records {payout.gateway_reference}, not {refund.id}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="payouts per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=32, help="threads per worker (production's default: 32)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    running = Processes()
    tag = uuid.uuid4().hex[:8]
    schema = f"payouts_bench_{tag}"
    schema_created = False
    server = None
    try:
        # --- services -------------------------------------------------------------------
        redis_port = running.redis()
        from tests.payouts.stripe_server import RunningStripeServer

        server = RunningStripeServer(STRIPE_KEY)
        env = django_env(
            DATABASE_URL=schema_url(schema),
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            PAYMENT_GATEWAY="stripe",
            STRIPE_SECRET_KEY=STRIPE_KEY,
            STRIPE_API_BASE=server.state.url,
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            STAFF_ALERT_EMAILS="",
            LOG_LEVEL="WARNING",
        )
        schema_created = True
        create_schema(schema)
        os.environ.update(env)
        import django

        django.setup()
        from refundportal.celery import app

        # --- data -----------------------------------------------------------------------
        t0 = time.perf_counter()
        warm = seed(args.workers * args.threads * 2, tag, "w")
        phases = {latency: seed(args.count, tag, f"l{i}") for i, latency in enumerate([0, LATENCY])}
        written = time.perf_counter() - t0
        print(f"{2 * args.count + len(warm)} orders and payouts written in {written:.1f} s")

        # --- workers --------------------------------------------------------------------
        for i in range(args.workers):
            running.start(
                f"worker{i}",
                worker_command(args.threads, f"bench-payouts-{i}-{tag}@%h"),
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < args.workers:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not come up:\n" + running.log_tail("worker0"))

        # --- the run --------------------------------------------------------------------
        print(f"machine: {machine()}")
        print(f"at the start: {load()}")
        print(
            f"workers: {args.workers} × threads({args.threads}), queue payouts; "
            f"redis :{redis_port}; Stripe-wire server {server.state.url}; "
            f"database {DB_NAME} (schema {schema})"
        )
        server.state.latency = LATENCY
        send_all(warm, args.timeout)  # untimed: every thread's connection and session
        workers = [proc.pid for name, proc in running.procs if name.startswith("worker")]
        rates: dict[float, float] = {}
        for latency, ids in phases.items():
            server.state.latency = latency
            pids = [p for g in workers for p in group_pids(g)]
            cpu_before = cpu_seconds(pids), sum(os.times()[:2]), cpu_seconds(backend_pids(schema))
            elapsed = send_all(ids, args.timeout)
            cpu = (
                cpu_seconds(pids) - cpu_before[0],
                sum(os.times()[:2]) - cpu_before[1],
                cpu_seconds(backend_pids(schema)) - cpu_before[2],
            )
            rates[latency] = len(ids) / elapsed
            per = ", ".join(
                f"{what} {c / len(ids) * 1000:.2f} ms"
                for what, c in zip(
                    ("workers", "bench + Stripe server", "PostgreSQL"), cpu, strict=True
                )
            )
            print(
                f"Stripe answering after {latency * 1000:.0f} ms: {len(ids)} payouts in "
                f"{elapsed:.2f} s = {rates[latency]:.0f} payouts/s; CPU per payout: {per} "
                f"({sum(cpu) / elapsed:.2f} of {os.cpu_count()} cores)"
            )
        print(f"at the end: {load()}")

        time.sleep(1.0)  # anything sent twice would arrive now
        problems = paid_once(
            server.state.ledger, warm + [i for ids in phases.values() for i in ids]
        )
        posts = sum(1 for r in server.state.requests if "params" in r)
        ratio = rates[LATENCY] / rates[0]
        print(
            f"ratio: {ratio:.2f} (budget >= {RATIO_BUDGET:.2f}); at {LATENCY * 1000:.0f} ms "
            f"{rates[LATENCY]:.0f} payouts/s (aim >= {AIM:.0f}/s on a quiet machine)"
        )
        print(
            f"Stripe's ledger: {len(server.state.ledger)} refunds for "
            f"{len(warm) + 2 * args.count} payouts, {posts} refund requests; "
            f"paid exactly once: {'yes' if not problems else 'NO'}"
        )
        for problem in problems[:10]:
            print(f"  {problem}")
        ok = ratio >= RATIO_BUDGET and not problems
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        clean_up(running, schema if schema_created else None)
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
