"""Shared by the benchmarks: where the bench database is, and how to reach it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = os.environ.get("BENCH_DB_NAME", "refundportal_bench")
SERVER_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
DATABASE_URL = f"{SERVER_URL}/{DB_NAME}"


def conninfo(dbname: str = DB_NAME) -> str:
    return f"{SERVER_URL}/{dbname}"


def django_env(**extra: str) -> dict[str, str]:
    """Environment for a Django process on the bench database (no shared Redis)."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}}
    env.update(DATABASE_URL=DATABASE_URL, DJANGO_SETTINGS_MODULE="refundportal.settings.base")
    env.setdefault("LOG_LEVEL", "WARNING")
    env.update(extra)
    return env


def setup_django() -> None:
    """Django in this process, on the bench database, with an in-memory Celery broker so a
    benchmark never publishes to a shared Redis or writes the repository's file broker."""
    os.environ.pop("REDIS_URL", None)
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "refundportal.settings.base"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from refundportal.celery import app

    app.conf.broker_url = "memory://"
    app.conf.broker_transport_options = {}
    app.conf.task_always_eager = False


def migrate() -> None:
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=django_env(),
        check=True,
    )


def machine() -> str:
    """What the figures were measured on (cores, memory, PostgreSQL), for the README."""
    import platform

    cores = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = "? RAM"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line for line in f if line.startswith("model name")).split(":", 1)[1]
    except (OSError, StopIteration):
        pass
    return f"{cores} cores ({cpu.strip()}), {mem}, Python {platform.python_version()}"


def load() -> str:
    """The 1/5/15-minute load average: other work on the machine skews every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"
