"""The deadline sweep against a bare UPDATE of the same rows, on PostgreSQL at full scale.

    .venv/bin/python bench/sweep.py                 # generates the data first if needed

For each scenario, 50 000 cases past a deadline among the generated 100 000 (on 500 000
orders), then, alternating and repeated (median of 3):

  (a) a bare `UPDATE … SET state = … WHERE state = … AND <deadline> <= now` of those rows and
      its COMMIT (then restored, untimed);
  (b) the full `enforce_deadlines` pass (`refundportal.deadlines.enforce_all`): every sweep of
      every window, each due case transitioned with its audit event written, the payout
      follow-up queued in batches (to an in-memory broker) — and, inside it, the one sweep
      that has work, timed on its own.

Then: the payout follow-up of one queued batch (500 cases) run in-process; peak memory of the
pass at 10 000 and 50 000 due rows (fresh processes); EXPLAIN of every sweep's claim (refund,
dispute and payout sweeps); the statements of one batch with their times. Budget (issue #12):
the sweep at most 12 times the bare UPDATE, memory flat as the count grows, every claim on an
index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.common import PYTHON, ROOT, conninfo, load, machine, setup_django
from bench.generate import ensure

MARK = "bench:sweep"
OUT = ROOT / "bench" / "out"

# name -> (sweep, source state, deadline column, extra columns set on insert, bare target state)
SCENARIOS: dict[str, dict[str, Any]] = {
    "auto_accept": {
        "sweep": "auto_accept",
        "state": "requested",
        "deadline": "respond_by",
        "return_item": False,
        "bare_to": "refund_pending",
        "label": "requested past respond_by, no return: auto-accept → refund_pending",
    },
    "offer_lapse": {
        "sweep": "offer_lapse",
        "state": "offer_made",
        "deadline": "offer_by",
        "return_item": False,
        "bare_to": "closed",
        "label": "offer_made past offer_by: offer lapses → closed (offer_declined)",
    },
    "auto_accept_return": {
        "sweep": "auto_accept",
        "state": "requested",
        "deadline": "respond_by",
        "return_item": True,
        "bare_to": "awaiting_return",
        "label": "requested past respond_by, return needed: auto-accept → awaiting_return "
        "(return_by per local day)",
    },
}


# --- data -------------------------------------------------------------------------------------


def pg() -> psycopg.Connection:
    return psycopg.connect(conninfo(), autocommit=True)


def vacuum(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM (ANALYZE) refunds_refundcase, orders_event, orders_payout, orders_order")


def prepare(conn: psycopg.Connection, scenario: str, due: int, *, not_due: int = 0) -> None:
    """Replace the bench's cases by `due` fresh ones past their deadline (and `not_due` with
    the deadline still ahead), on delivered orders that have no case; everything a previous run
    wrote for them (events, payouts, reservations) goes too."""
    spec = SCENARIOS[scenario]
    catch_up()
    with conn.transaction():
        conn.execute(
            "DELETE FROM orders_event WHERE case_id IN "
            "(SELECT public_id FROM refunds_refundcase WHERE description = %s)",
            [MARK],
        )
        paid = conn.execute(
            "DELETE FROM refunds_refundcase WHERE description = %s RETURNING payout_id, order_id",
            [MARK],
        ).fetchall()
        orders = [o for _p, o in paid]
        conn.execute(
            "DELETE FROM orders_payout WHERE order_id = ANY(%s) AND purpose = 'refund'", [orders]
        )
        conn.execute(
            "UPDATE orders_order SET reserved = 0 WHERE id = ANY(%s) AND reserved <> 0", [orders]
        )
        deadline = spec["deadline"]
        offer = spec["state"] == "offer_made"
        conn.execute(
            """
            INSERT INTO refunds_refundcase (
                created_at, updated_at, public_id, reason, description, amount, currency,
                return_item, state, closed_reason, reject_reason, respond_by,
                respond_reminded_at, answered_at, auto_accepted, offer_amount, offer_by,
                return_number, return_carrier, return_tracking_number, refunded_amount,
                order_id)
            SELECT d - interval '48 hours', d - interval '48 hours', gen_random_uuid(), 'damaged',
                   %(mark)s, amount, currency, %(return_item)s, %(state)s, '', '',
                   CASE WHEN %(offer)s THEN d - interval '28 hours' ELSE d END,
                   d - interval '24 hours',
                   CASE WHEN %(offer)s THEN d - interval '48 hours' END, false,
                   CASE WHEN %(offer)s THEN round(amount / 2, CASE WHEN currency = 'JPY'
                                                                    THEN 0 ELSE 2 END) END,
                   CASE WHEN %(offer)s THEN d END,
                   CASE WHEN %(return_item)s THEN 'RMA-Z' || lpad(to_hex(id), 10, '0') END,
                   '', '', 0, id
            FROM (
                SELECT o.id, o.currency,
                       CASE WHEN o.currency = 'JPY' THEN round(o.total * 0.8)
                            ELSE round(o.total * 0.8, 2) END AS amount,
                       -- due ones spread over the last 47 h (a backlog across local days),
                       -- the rest a day ahead
                       CASE WHEN n <= %(due)s
                            THEN now() - interval '1 minute' - (n::float / %(due)s)
                                 * interval '47 hours'
                            ELSE now() + interval '1 day' END AS d
                FROM (SELECT o.id, o.currency, o.total, row_number() OVER (ORDER BY o.id) AS n
                      FROM orders_order AS o
                      WHERE o.status = 'delivered'
                        AND NOT EXISTS (SELECT 1 FROM refunds_refundcase AS c
                                        WHERE c.order_id = o.id)
                      ORDER BY o.id LIMIT %(total)s) AS o
            ) AS s
        """,
            {
                "mark": MARK,
                "return_item": spec["return_item"],
                "state": spec["state"],
                "offer": offer,
                "due": due,
                "total": due + not_due,
            },
        )
        count = conn.execute(
            f"SELECT count(*) FROM refunds_refundcase WHERE description = %s "
            f"AND state = %s AND {deadline} <= now()",
            [MARK, spec["state"]],
        ).fetchone()[0]
        assert count == due, (count, due)
    vacuum(conn)


def catch_up() -> None:
    """The generated data ages (a requested case's 48 h run out an hour after generating): sweep
    whatever has come due since, untimed, as the beat would have, so the timed runs see only the
    bench's own due rows."""
    from django.db import connection
    from django.utils import timezone

    from refundportal.deadlines import enforce_all

    enforce_all(now=timezone.now())
    connection.close()


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a PostgreSQL backend has used, from /proc: unlike wall time,
    it hardly changes when other work shares the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_update(conn: psycopg.Connection, scenario: str, now: Any) -> tuple[float, float]:
    """(a): the same rows' state in one UPDATE, committed; then put back (untimed).
    Wall seconds and the backend's CPU seconds."""
    spec = SCENARIOS[scenario]
    sql = (
        f"UPDATE refunds_refundcase SET state = %s WHERE state = %s "
        f"AND {spec['deadline']} <= %s AND description = %s"
    )
    cpu = backend_cpu(conn.info.backend_pid)
    started = time.perf_counter()
    with conn.transaction():
        moved = conn.execute(sql, [spec["bare_to"], spec["state"], now, MARK]).rowcount
    elapsed = time.perf_counter() - started
    cpu = backend_cpu(conn.info.backend_pid) - cpu
    with conn.transaction():
        conn.execute(
            f"UPDATE refunds_refundcase SET state = %s WHERE description = %s "
            f"AND state = %s AND {spec['deadline']} <= %s",
            [spec["state"], MARK, spec["bare_to"], now],
        )
    assert moved >= 1, moved
    vacuum(conn)
    return elapsed, cpu


class Timings:
    """Wraps the engine's entry points where the sweeps call them, to time each sweep inside the
    full pass (the time spent inside the engine only, not the caller's queueing between
    batches), and records the payout follow-up the pass queues and what queueing it cost."""

    def __init__(self) -> None:
        import disputes.sweeps
        import payouts.sweeps
        import refunds.sweeps
        import refunds.tasks

        self.sweeps: dict[str, float] = {}
        self.queued: list[list[int]] = []
        self.queue_seconds = 0.0
        self._patched: list[tuple[Any, str, Any]] = []
        for module in (refunds.sweeps, disputes.sweeps, payouts.sweeps):
            for name in ("run_sweep", "sweep_moves"):
                if hasattr(module, name):
                    self._wrap(module, name, self._timed)
            if hasattr(module, "iter_sweep"):
                self._wrap(module, "iter_sweep", self._timed_batches)
        task = refunds.tasks.refund_payouts_start
        original_delay = task.delay

        def delay(case_ids: list[int]) -> Any:
            self.queued.append(list(case_ids))
            started = time.perf_counter()
            try:
                return original_delay(case_ids)
            finally:
                self.queue_seconds += time.perf_counter() - started

        self._wrap(task, "delay", lambda _orig: delay)

    def _wrap(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        self._patched.append((owner, name, original))
        setattr(owner, name, make(original))

    def _timed(self, original: Any) -> Any:
        def run(sweep: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            moved = original(sweep, **kwargs)
            self.sweeps[sweep.name] = time.perf_counter() - started
            return moved

        return run

    def _timed_batches(self, original: Any) -> Any:
        def run(sweep: Any, **kwargs: Any) -> Any:
            batches = original(sweep, **kwargs)
            spent = 0.0
            while True:
                started = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                finally:
                    spent += time.perf_counter() - started
                    self.sweeps[sweep.name] = spent
                yield batch

        return run

    def restore(self) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)


def full_pass(now: Any) -> tuple[float, float, dict[str, int], Timings]:
    """(b): one `enforce_deadlines` pass, with each sweep inside it timed: wall seconds, and CPU
    seconds of this process and its database backend."""
    from django.db import connection

    from refundportal.deadlines import enforce_all

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    timings = Timings()
    try:
        cpu = time.process_time() + backend_cpu(pid)
        started = time.perf_counter()
        moved = enforce_all(now=now)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() + backend_cpu(pid) - cpu
    finally:
        timings.restore()
    return elapsed, cpu, moved, timings


# --- EXPLAIN ----------------------------------------------------------------------------------


def _plan_nodes(plan: dict[str, Any], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    nodes = [(depth, plan)]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child, depth + 1)
    return nodes


def _describe(plan: dict[str, Any]) -> str:
    parts = []
    for _depth, node in _plan_nodes(plan):
        kind = node["Node Type"]
        if "Index Name" in node:
            kind += f" using {node['Index Name']}"
        elif node["Node Type"] == "Seq Scan":
            kind += f" on {node.get('Relation Name')}"
        parts.append(kind)
    return " → ".join(parts)


def all_sweeps(now: Any) -> list[Any]:
    from disputes.sweeps import dispute_sweeps
    from payouts.sweeps import payout_overdue_sweep
    from refunds.sweeps import reminder_sweeps, transition_sweeps

    return [
        *transition_sweeps(),
        *reminder_sweeps(now),
        *dispute_sweeps(now),
        payout_overdue_sweep(),
    ]


def explain_claims(now: Any) -> list[dict[str, Any]]:
    from django.db import connection

    from kernel.sweeps import claim_sql

    rows = []
    for sweep in all_sweeps(now):
        sql, params = claim_sql(sweep, now=now)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = _loads(cursor.fetchone()[0])[0]["Plan"]
        indexes = [n.get("Index Name") for _d, n in _plan_nodes(plan) if n.get("Index Name")]
        seq = [
            n.get("Relation Name") for _d, n in _plan_nodes(plan) if n["Node Type"] == "Seq Scan"
        ]
        rows.append(
            {
                "sweep": sweep.name,
                "table": sweep.model._meta.db_table,
                "plan": _describe(plan),
                "indexes": indexes,
                "seq_scans": seq,
                "ok": bool(indexes) and not seq,
            }
        )
    return rows


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def batch_statements(scenario: str, now: Any) -> list[str]:
    """One batch of the scenario's sweep (rolled back): each statement and its time, and the
    time the batch spent outside the database (building rows and events in Python)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from kernel.sweeps import run_sweep
    from refunds.sweeps import transition_sweeps

    sweep = next(s for s in transition_sweeps() if s.name == SCENARIOS[scenario]["sweep"])
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        started = time.perf_counter()
        moved = run_sweep(sweep, now=now, limit=settings_batch_size())
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    lines = []
    in_db = 0.0
    for query in ctx.captured_queries:
        seconds = float(query["time"])
        in_db += seconds
        lines.append(f"{seconds * 1000:7.1f} ms  {query['sql'][:90]}")
    lines.append(
        f"{len(moved)} rows: {elapsed * 1000:.0f} ms in all, {in_db * 1000:.0f} ms in "
        f"{len(ctx.captured_queries)} statements, {(elapsed - in_db) * 1000:.0f} ms in Python"
    )
    return lines


def settings_batch_size() -> int:
    from django.conf import settings

    return int(settings.SWEEP_BATCH_SIZE)


# --- memory (fresh process per size) ------------------------------------------------------------


def child_memory(mode: str) -> None:
    """Run one full pass in this fresh process and print its memory on stdout (JSON)."""
    setup_django()
    import tracemalloc

    from django.db import connection
    from django.utils import timezone

    from refundportal.deadlines import enforce_all

    with connection.cursor() as cursor:  # connect and warm up before measuring
        cursor.execute("SELECT 1")
    import disputes.sweeps  # noqa: F401
    import payouts.sweeps  # noqa: F401
    import refunds.sweeps  # noqa: F401

    def rss_now_kib() -> int:
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("VmRSS")).split()[1])

    before = rss_now_kib()
    if mode == "tracemalloc":
        tracemalloc.start()
    started = time.perf_counter()
    moved = enforce_all(now=timezone.now())
    elapsed = time.perf_counter() - started
    peak_py = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rss_before_kib": before,
                "peak_rss_kib": peak,
                "growth_kib": peak - before,
                "tracemalloc_peak": peak_py,
                "moved": sum(moved.values()),
                "seconds": elapsed,
            }
        )
    )


def memory_at(
    conn: psycopg.Connection, scenario: str, due: int, total: int, mode: str
) -> dict[str, Any]:
    prepare(conn, scenario, due, not_due=total - due)
    out = subprocess.run(
        [PYTHON, __file__, "--child-memory", mode],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main -------------------------------------------------------------------------------------


def run_scenario(
    conn: psycopg.Connection, scenario: str, due: int, repeat: int, follow_up: bool
) -> dict[str, Any]:
    from django.db import connection as dj
    from django.utils import timezone

    spec = SCENARIOS[scenario]
    bare, full, sweep_only, other, queueing = [], [], [], [], []
    bare_cpu, full_cpu = [], []
    result: dict[str, Any] = {"scenario": scenario, "label": spec["label"], "due": due}
    for rep in range(repeat):
        prepare(conn, scenario, due)
        dj.close()  # a fresh connection after VACUUM, like a beat tick
        now = timezone.now()
        bare_wall, bare_db_cpu = bare_update(conn, scenario, now)
        bare.append(bare_wall)
        bare_cpu.append(bare_db_cpu)
        elapsed, cpu, moved, timings = full_pass(now)
        full_cpu.append(cpu)
        # A generated case may come due in the seconds since `prepare`: the sweep moves it too.
        assert due <= moved[spec["sweep"]] <= due + 20, moved
        full.append(elapsed)
        sweep_only.append(timings.sweeps[spec["sweep"]])
        other.append(sum(t for n, t in timings.sweeps.items() if n != spec["sweep"]))
        queueing.append(timings.queue_seconds)
        queued = sum(len(b) for b in timings.queued)
        others = {n: c for n, c in moved.items() if c and n != spec["sweep"]}
        print(
            f"  rep {rep + 1}: bare UPDATE {bare[-1]:.3f} s | full pass {elapsed:.3f} s "
            f"(sweep {sweep_only[-1]:.3f} s; other sweeps {other[-1]:.3f} s, moving {others or 0}; "
            f"{len(timings.queued)} follow-up tasks queued for {queued} cases in "
            f"{queueing[-1]:.3f} s); CPU: bare {bare_cpu[-1]:.2f} s, pass {cpu:.2f} s "
            f"({cpu / max(bare_cpu[-1], 0.01):.1f}×)",
            flush=True,
        )
        result["other_moved"] = others
        if follow_up and rep == 0 and timings.queued:
            result["follow_up"] = measure_follow_up(timings.queued)
    med = {
        k: statistics.median(v)
        for k, v in {
            "bare": bare,
            "full": full,
            "sweep": sweep_only,
            "other_sweeps": other,
            "queueing": queueing,
            "bare_cpu": bare_cpu,
            "full_cpu": full_cpu,
        }.items()
    }
    result.update(
        runs={"bare": bare, "full": full, "sweep": sweep_only},
        median=med,
        ratio_sweep=med["sweep"] / med["bare"],
        ratio_full=med["full"] / med["bare"],
        ratio_cpu=med["full_cpu"] / med["bare_cpu"],
    )
    return result


def measure_follow_up(batches: list[list[int]]) -> dict[str, Any]:
    """Run the first queued follow-up batch in-process: what a worker does per task."""
    from refunds.services import refund_start_payouts

    batch = batches[0]
    started = time.perf_counter()
    started_payouts = refund_start_payouts(case_ids=batch)
    elapsed = time.perf_counter() - started
    total = sum(len(b) for b in batches)
    info = {
        "batch": len(batch),
        "seconds": elapsed,
        "payouts": started_payouts,
        "per_case_ms": 1000 * elapsed / max(1, len(batch)),
        "batches": len(batches),
        "total_cases": total,
        "worker_seconds_total": elapsed * total / max(1, len(batch)),
    }
    print(
        f"  follow-up: one task of {len(batch)} cases started {started_payouts} payouts in "
        f"{elapsed:.2f} s ({info['per_case_ms']:.1f} ms/case) → {total} cases ≈ "
        f"{info['worker_seconds_total']:.0f} worker-seconds over {len(batches)} tasks"
    )
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--due", type=int, help="due rows (default: 50 000 × scale)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scenarios", default="auto_accept,offer_lapse,auto_accept_return")
    parser.add_argument("--quick", action="store_true", help="main scenario only, no memory runs")
    parser.add_argument("--child-memory", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        child_memory(args.child_memory)
        return

    ensure(args.scale, quiet=True)
    args.due = args.due or max(100, round(50_000 * args.scale))
    setup_django()
    from django.conf import settings
    from django.utils import timezone

    OUT.mkdir(parents=True, exist_ok=True)
    conn = pg()
    pg_version = conn.execute("SHOW server_version").fetchone()[0]
    print(f"machine: {machine()}, PostgreSQL {pg_version}")
    print(f"at start: {load()}")
    print(
        f"data: scale {args.scale:g}; batch size {settings.SWEEP_BATCH_SIZE}; "
        f"{args.due:,} due rows; median of {args.repeat}\n"
    )
    scenarios = ["auto_accept"] if args.quick else args.scenarios.split(",")
    report: dict[str, Any] = {
        "machine": machine(),
        "postgres": pg_version,
        "batch_size": settings.SWEEP_BATCH_SIZE,
        "scenarios": [],
    }
    for scenario in scenarios:
        print(f"{scenario}: {SCENARIOS[scenario]['label']}")
        result = run_scenario(
            conn, scenario, args.due, args.repeat, follow_up=scenario == "auto_accept"
        )
        med = result["median"]
        print(
            f"  median: bare UPDATE {med['bare']:.3f} s · sweep {med['sweep']:.3f} s "
            f"({result['ratio_sweep']:.2f}×) · full enforce_deadlines pass {med['full']:.3f} s "
            f"({result['ratio_full']:.2f}×; other sweeps {med['other_sweeps'] * 1000:.0f} ms, "
            f"queueing the follow-up {med['queueing'] * 1000:.0f} ms); CPU (app + database): "
            f"bare {med['bare_cpu']:.2f} s · pass {med['full_cpu']:.2f} s "
            f"({result['ratio_cpu']:.2f}×)\n"
        )
        report["scenarios"].append(result)

    if not args.quick:
        print(
            f"memory of one full pass (fresh process each; {args.due:,} bench cases, N of them due)"
        )
        report["memory"] = {}
        sizes = (args.due // 5, args.due)
        for due in sizes:
            rss = memory_at(conn, "auto_accept", due, args.due, "rss")
            traced = memory_at(conn, "auto_accept", due, args.due, "tracemalloc")
            report["memory"][due] = {"rss": rss, "tracemalloc": traced}
            print(
                f"  {due:>6,} due: peak RSS +{rss['growth_kib'] / 1024:.1f} MiB over "
                f"{rss['rss_before_kib'] / 1024:.0f} MiB at start "
                f"(pass {rss['seconds']:.2f} s); Python heap peak "
                f"{traced['tracemalloc_peak'] / 1024 / 1024:.1f} MiB"
            )
        small, big = report["memory"][sizes[0]], report["memory"][sizes[1]]
        rss_x = big["rss"]["growth_kib"] / max(1, small["rss"]["growth_kib"])
        heap_x = big["tracemalloc"]["tracemalloc_peak"] / max(
            1, small["tracemalloc"]["tracemalloc_peak"]
        )
        print(
            f"  growth {sizes[0]:,} → {sizes[1]:,}: RSS ×{rss_x:.2f}, heap ×{heap_x:.2f} "
            "for ×5 rows\n"
        )

    prepare(conn, "auto_accept", args.due)
    now = timezone.now()
    print(f"EXPLAIN of every sweep's claim (with {args.due:,} requested cases due):")
    if args.scale < 1:
        print("  (a small scale: on tables this small the planner may rightly prefer a scan)")
    claims = explain_claims(now)
    for row in claims:
        flag = "ok " if row["ok"] else "NO INDEX"
        print(f"  {flag} {row['sweep']:<26} {row['plan']}")
    report["explain_claims"] = claims
    print("\nthe statements of one batch of auto_accept (rolled back):")
    lines = batch_statements("auto_accept", now)
    for line in lines:
        print("  " + line)
    report["batch_statements"] = lines
    prepare(conn, "auto_accept", 0)  # leave no due rows behind

    main_result = report["scenarios"][0]
    ratio = main_result["ratio_sweep"]
    verdict = "within the budget (≤ 12×)" if ratio <= 12 else "OVER the budget (> 12×)"
    print(
        f"\nresult: sweep / bare UPDATE = {ratio:.2f}× — {verdict}; "
        f"full pass {main_result['ratio_full']:.2f}×; CPU {main_result['ratio_cpu']:.2f}×; "
        f"claims on an index: {sum(r['ok'] for r in claims)}/{len(claims)}"
    )
    print(f"at end: {load()}")
    (OUT / "sweep.json").write_text(json.dumps(report, indent=2, default=str))
    conn.close()


if __name__ == "__main__":
    main()
