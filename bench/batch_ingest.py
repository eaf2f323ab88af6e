"""Orders per second through the batch endpoint against the single-order endpoint, under gunicorn,
in the same run.

    .venv/bin/python bench/batch_ingest.py [--seconds 8] [--rounds 3] [--clients 4]

Starts gunicorn with the production settings (as `pages.py` does) on a database of its own
(`BENCH_DB_NAME`, default `refundportal_bench_batch`, created and migrated on first use), signs a
marketplace integration account in with an API key, and pushes orders of two items each from
`--clients` keep-alive HTTP clients: one order per `POST /api/v1/orders/`, then 500 per
`POST /api/v1/orders/batch/`, alternating for `--rounds` rounds of `--seconds` each. Every
order is new (its own number and buyer; one seller per 50 orders) and every answer is checked
(201, or 200 with 500 results of 201). Budget (issue 15): the batch's orders/s ≥ 5 × the single
endpoint's, the median of the rounds' ratios. Figures go to bench/out/batch_ingest.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("BENCH_DB_NAME", "refundportal_bench_batch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DB_NAME, PYTHON, ROOT, conninfo, load, machine, setup_django
from bench.pages import free_port, server_env, start_gunicorn, stop

OUT = ROOT / "bench" / "out"
BUDGET = 5.0
BATCH = 500


def ensure_database() -> None:
    import psycopg

    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=conninfo(), DJANGO_SETTINGS_MODULE="refundportal.settings.base")
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True
    )


def marketplace_key() -> str:
    from orders.models import ApiScope, User
    from orders.services import api_token_issue

    user, _ = User.objects.get_or_create(
        email="feed@bench.example", defaults={"name": "Bench feed", "is_marketplace": True}
    )
    return api_token_issue(
        user=user,
        scopes=[ApiScope.READ, ApiScope.MARKETPLACE],
        via_token=None,
        actor=user,
        how="bench",
    ).key


class Feed:
    """Order bodies with numbers unique to this run: two items each, like the aim's orders."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(4)
        self.n = 0
        self.lock = threading.Lock()
        self.placed_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    def take(self, count: int) -> list[dict[str, Any]]:
        with self.lock:
            first, self.n = self.n, self.n + count
        return [
            {
                "number": f"B-{self.run}-{i}",
                "buyer": {"email": f"b{i}.{self.run}@bench.example", "name": f"Buyer {i}"},
                "seller": {"email": f"s{i // 50}.{self.run}@bench.example", "name": "Seller"},
                "currency": "USD",
                "total": "59.90",
                "payment_method": "card",
                "payment_reference": f"ch_{self.run}_{i}",
                "card_brand": "Visa",
                "card_last4": "4242",
                "placed_at": self.placed_at,
                "items": [
                    {"sku": "MUG-1", "title": "Travel mug", "quantity": 2, "unit_price": "20.00"},
                    {"sku": "TEA-1", "title": "Tea", "quantity": 1, "unit_price": "19.90"},
                ],
            }
            for i in range(first, first + count)
        ]


def push(port: int, key: str, feed: Feed, batch: bool, seconds: float, clients: int) -> float:
    """Orders/s pushed by `clients` keep-alive clients for `seconds`; every answer checked."""
    stop_at = time.monotonic() + seconds
    done = [0] * clients
    errors: list[str] = []
    headers = {
        "Authorization": f"Token {key}",
        "Content-Type": "application/json",
        "X-Forwarded-Proto": "https",
    }

    def client(slot: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < stop_at and not errors:
            if batch:
                path, body = "/api/v1/orders/batch/", {"orders": feed.take(BATCH)}
            else:
                path, body = "/api/v1/orders/", feed.take(1)[0]
            conn.request("POST", path, json.dumps(body), headers)
            response = conn.getresponse()
            data = response.read()
            if batch:
                ok = response.status == 200 and all(
                    r["status"] == 201 for r in json.loads(data)["results"]
                )
            else:
                ok = response.status == 201
            if not ok:
                errors.append(f"{response.status} {data[:300]!r}")
                return
            done[slot] += BATCH if batch else 1
        conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        raise RuntimeError(f"{'batch' if batch else 'single'}: {errors[0]}")
    return sum(done) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    ensure_database()
    secret_key = secrets.token_urlsafe(64)
    os.environ["SECRET_KEY"] = secret_key
    setup_django()
    key = marketplace_key()
    env = server_env(60, secret_key)
    port = free_port()
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "gunicorn-batch.log"
    print(f"machine: {machine()}")
    print(f"at start: {load()}")
    proc = start_gunicorn(env, port, log)
    feed = Feed()
    rounds: list[dict[str, float]] = []
    try:
        push(port, key, feed, False, 2, args.clients)  # warm-up: workers, connections
        push(port, key, feed, True, 2, args.clients)
        for n in range(args.rounds):
            single = push(port, key, feed, False, args.seconds, args.clients)
            batch = push(port, key, feed, True, args.seconds, args.clients)
            rounds.append({"single": single, "batch": batch, "ratio": batch / single})
            print(
                f"round {n + 1}: single {single:7.1f} orders/s, batch {batch:7.1f} orders/s, "
                f"{batch / single:5.1f} ×"
            )
    finally:
        stop(proc)
    ratio = statistics.median(r["ratio"] for r in rounds)
    result = {
        "machine": machine(),
        "load_at_end": load(),
        "clients": args.clients,
        "batch_size": BATCH,
        "rounds": rounds,
        "single_median": statistics.median(r["single"] for r in rounds),
        "batch_median": statistics.median(r["batch"] for r in rounds),
        "ratio_median": ratio,
        "budget": BUDGET,
        "met": ratio >= BUDGET,
    }
    (OUT / "batch_ingest.json").write_text(json.dumps(result, indent=2))
    print(
        f"median: single {result['single_median']:.1f} orders/s, batch "
        f"{result['batch_median']:.1f} orders/s: {ratio:.1f} × (budget ≥ {BUDGET} ×) — "
        f"{'met' if result['met'] else 'NOT met'}; at end: {load()}"
    )


if __name__ == "__main__":
    main()
