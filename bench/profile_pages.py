"""Where a page's time goes: the routes of bench/pages.py run in-process, no HTTP server.

    .venv/bin/python bench/profile_pages.py                  # CPU per request and queries
    .venv/bin/python bench/profile_pages.py --profile case   # pyinstrument tree of one route

The same settings (production, `bench.settings`), data, buyer and case as `pages.py`, through
Django's test client: every middleware, the view, the template, the database round trips; not
gunicorn's HTTP parsing. CPU per request is `time.process_time` over `--requests` requests
after a warm-up, so it does not depend on what else the machine runs as much as req/s does.
`--profile ROUTE` needs pyinstrument (`pip install -e '.[bench]'`). For a profile of the
gunicorn workers under load, use py-spy (same extra) on a worker while `pages.py` runs.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from bench.generate import ensure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=300, help="per route")
    parser.add_argument(
        "--profile", metavar="ROUTE", help="baseline, orders, case, dispute, dashboard or api"
    )
    args = parser.parse_args()

    ensure(args.scale)
    from bench import pages

    env = pages.server_env(60, secrets.token_urlsafe(64))
    os.environ.update(env)
    import django

    django.setup()
    pages.collectstatic(env)

    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    print(machine())
    subjects = pages.pick_subjects()

    def client_with(cookie: str) -> Any:
        name, key = cookie.split("=", 1)
        client = Client(HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="127.0.0.1")
        client.cookies[name] = key
        return client

    try:
        routes = {
            label: (path, client_with(cookie)) for label, path, cookie in pages.targets(subjects)
        }
        if args.profile:
            path, client = routes[args.profile]
            profile(client, path, args.requests)
            return
        print(f"in-process, {args.requests} requests per route after 20 to warm up:")
        cost: dict[str, float] = {}
        for label, (path, client) in routes.items():
            for _ in range(20):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
            start = time.process_time()
            for _ in range(args.requests):
                client.get(path)
            cost[label] = (time.process_time() - start) / args.requests * 1000
            with CaptureQueriesContext(connection) as queries:
                client.get(path)
            times = (
                f" ({cost[label] / cost['baseline']:.1f} × baseline)"
                if cost.get("baseline")
                else ""
            )
            print(f"  {label:9s} {cost[label]:6.2f} ms CPU{times:20s} {len(queries)} queries")
    finally:
        Session.objects.filter(session_key__in=subjects["session_keys"]).delete()


def profile(client: Any, path: str, requests: int) -> None:
    from pyinstrument import Profiler

    for _ in range(20):
        client.get(path)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(requests):
        client.get(path)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False))


if __name__ == "__main__":
    main()
