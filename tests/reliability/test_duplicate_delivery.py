"""Every Celery task delivered twice, or twice at once, has the effect of one delivery.

A broker redelivers (acks_late after a lost worker, a Redis visibility timeout), beat and the
re-dispatchers queue the same work again: each task must be safe to run twice or concurrently
(docs/architecture.md, Tasks and beat). The task list is read from the Celery app, so a new task
without a scenario here fails `test_every_task_has_a_duplicate_delivery_scenario`; the settings test
at the end then allows acks_late / reject_on_worker_lost only on the tasks proven idempotent here.

Each scenario prepares work that is due but not yet done (the on-commit queueing is held back
while it is prepared, as if its message were still in flight), runs the task, and compares a
snapshot of everything the task could touch: the second delivery must change nothing.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from django.conf import settings
from django.core import mail
from django.utils import timezone

from disputes.models import Dispute
from notifications import services as notification_services
from notifications.models import Notification
from notifications.models import Status as NoticeStatus
from orders import hooks
from orders.models import Event, IdempotencyKey, Order
from orders.services import IDEMPOTENCY_KEY_LIFETIME
from payouts import services as payout_services
from payouts.models import GatewayRefund, Payout, PayoutStatus
from refundportal.celery import app
from refunds import services as refund_services
from refunds import tasks as refund_tasks
from refunds.drafts import DRAFT_FILE_MAX_AGE, RefundDraft, refund_draft_add_files
from refunds.models import RefundCase, State
from refunds.sweeps import refund_sweeps_run
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory
from tests.portal.conftest import png_upload
from tests.refunds.factories import file_refund

from .helpers import assert_paid_at_most_total, raise_unexpected, run_together

OUR_MODULES = ("orders.", "payouts.", "refunds.", "disputes.", "notifications.", "refundportal.")
# docs/architecture.md (Tasks and beat): no task countdown is longer than 5 minutes.
MAX_COUNTDOWN = 300
BASE_DIR = Path(settings.BASE_DIR)


def our_tasks() -> dict[str, Any]:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if name.startswith(OUR_MODULES)}


# --- holding back the on-commit queueing while a scenario is prepared ---------------------------


@contextlib.contextmanager
def in_flight() -> Iterator[None]:
    """Write the rows a transition writes, but queue nothing: its messages are "in flight"."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(payout_services, "payout_enqueue"))
        stack.enter_context(mock.patch.object(hooks, "events_written", []))
        stack.enter_context(mock.patch.object(refund_tasks.refund_payouts_start, "delay"))
        stack.enter_context(mock.patch.object(refund_tasks.refund_payouts_redispatch, "delay"))
        yield


# --- what a task could change ------------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    """Everything a task of ours writes, without timestamps that a no-op may not touch anyway."""
    return {
        "orders": sorted(Order.objects.values_list("number", "status", "reserved")),
        "idempotency_keys": sorted(IdempotencyKey.objects.values_list("key", flat=True)),
        "payouts": sorted(
            Payout.objects.values_list(
                "idempotency_key", "status", "amount", "attempts", "gateway_reference"
            )
        ),
        "gateway": sorted(
            GatewayRefund.objects.values_list("idempotency_key", "amount", "status", "calls")
        ),
        "cases": sorted(RefundCase.objects.values_list("public_id", "state", "payout_id")),
        "disputes": sorted(
            Dispute.objects.values_list(
                "public_id", "state", "statement_lapsed_at", "target_flagged_at", "due_flagged_at"
            )
        ),
        "events": sorted(Counter(Event.objects.values_list("kind", "case_id")).items(), key=repr),
        "undispatched": Event.objects.filter(dispatched_at__isnull=True).count(),
        "notices": sorted(
            Notification.objects.values_list("event_id", "email", "status", "attempts")
        ),
        "emails": sorted((m.to[0], m.subject) for m in mail.outbox),
    }


# --- scenarios: one per task --------------------------------------------------------------------


@dataclass
class Prepared:
    args: tuple[Any, ...]
    # Asserts the task's effect happened exactly once.
    check: Callable[[], None]


def _pending_payout(buyer: Any, seller: Any) -> tuple[Order, Payout]:
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    with in_flight():
        payout_services.order_cancel_out_of_stock(order=order, actor=seller)
    return order, Payout.objects.get(order=order)


def _paid_once(order: Order) -> Callable[[], None]:
    def check() -> None:
        payout = Payout.objects.get(order=order)
        assert payout.status == PayoutStatus.SUCCEEDED
        refund = GatewayRefund.objects.get(payment_reference=order.payment_reference)
        assert (refund.idempotency_key, refund.calls) == (payout.idempotency_key, 1)
        assert_paid_at_most_total(order)

    return check


def payout_send(buyer: Any, seller: Any) -> Prepared:
    order, payout = _pending_payout(buyer, seller)
    return Prepared((payout.pk,), _paid_once(order))


def payouts_redispatch(buyer: Any, seller: Any) -> Prepared:
    order, _ = _pending_payout(buyer, seller)
    return Prepared((), _paid_once(order))


def _auto_accepted_unpaid(buyer: Any, seller: Any) -> RefundCase:
    """A case the sweep moved to refund_pending whose payout follow-up was never queued."""
    past = timezone.now() - timedelta(days=3)
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=past)
    with in_flight():
        case = file_refund(order, now=past)
        refund_sweeps_run(now=timezone.now())
    case.refresh_from_db()
    assert (case.state, case.payout_id) == (State.REFUND_PENDING, None)
    return case


def _case_paid_once(case: RefundCase) -> Callable[[], None]:
    def check() -> None:
        case.refresh_from_db()
        assert case.state == State.REFUNDED
        _paid_once(case.order)()

    return check


def refund_payouts_start(buyer: Any, seller: Any) -> Prepared:
    case = _auto_accepted_unpaid(buyer, seller)
    return Prepared(([case.pk],), _case_paid_once(case))


def refund_payouts_redispatch(buyer: Any, seller: Any) -> Prepared:
    case = _auto_accepted_unpaid(buyer, seller)
    return Prepared((), _case_paid_once(case))


def enforce_deadlines(buyer: Any, seller: Any) -> Prepared:
    past = timezone.now() - timedelta(days=3)
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=past)
    with in_flight():
        case = file_refund(order, now=past)

    def check() -> None:
        assert (
            Event.objects.filter(case_id=case.public_id, kind="refund.auto_accepted").count() == 1
        )
        _case_paid_once(case)()

    return Prepared((), check)


def _undispatched_events(buyer: Any, seller: Any) -> list[int]:
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    with in_flight():
        file_refund(order)  # refund.requested: tells the seller
    return list(Event.objects.filter(dispatched_at__isnull=True).values_list("id", flat=True))


def _each_notice_sent_once(event_ids: list[int]) -> Callable[[], None]:
    def check() -> None:
        notices = list(Notification.objects.filter(event_id__in=event_ids))
        assert notices, "the events notified nobody"
        assert {n.status for n in notices} == {NoticeStatus.SENT}
        assert all(n.attempts == 1 for n in notices)
        sent = Counter(m.to[0] for m in mail.outbox)
        assert sent == Counter(n.email for n in notices), sent

    return check


def notifications_dispatch(buyer: Any, seller: Any) -> Prepared:
    events = _undispatched_events(buyer, seller)
    return Prepared((), _each_notice_sent_once(events))


def notifications_redispatch(buyer: Any, seller: Any) -> Prepared:
    events = _undispatched_events(buyer, seller)
    return Prepared((), _each_notice_sent_once(events))


def notification_deliver(buyer: Any, seller: Any) -> Prepared:
    events = _undispatched_events(buyer, seller)
    (notice_id,) = notification_services.notifications_fan_out()
    return Prepared((notice_id,), _each_notice_sent_once(events))


def notifications_deliver_chunk(buyer: Any, seller: Any) -> Prepared:
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    with in_flight():
        case = file_refund(order)  # tells the seller
        refund_services.refund_reject(case=case, actor=seller, reason="Used.")  # the buyer
    events = list(Event.objects.filter(dispatched_at__isnull=True).values_list("id", flat=True))
    notice_ids = notification_services.notifications_fan_out()
    assert len(notice_ids) >= 2
    return Prepared((notice_ids,), _each_notice_sent_once(events))


def refund_drafts_cleanup(buyer: Any, seller: Any) -> Prepared:
    # a file of a draft abandoned past its day, and one of a draft still being filled in
    old, fresh = RefundDraft(), RefundDraft()
    refund_draft_add_files(draft=old, uploads=[png_upload("old.png")])
    refund_draft_add_files(draft=fresh, uploads=[png_upload("fresh.png")])
    root = Path(settings.PRIVATE_STORAGE_ROOT) / "drafts"
    old_path, fresh_path = root / old.files[0]["token"], root / fresh.files[0]["token"]
    long_ago = (timezone.now() - DRAFT_FILE_MAX_AGE - timedelta(minutes=1)).timestamp()
    os.utime(old_path, (long_ago, long_ago))

    def check() -> None:
        assert not old_path.exists() and fresh_path.exists()

    return Prepared((), check)


def idempotency_keys_expire(buyer: Any, seller: Any) -> Prepared:
    # a key answered more than a day ago, and one answered just now (fresh keys each call)
    tag = uuid.uuid4().hex
    old = IdempotencyKey.objects.create(
        user=buyer,
        key=f"old-{tag}",
        fingerprint="f" * 64,
        created_at=timezone.now() - IDEMPOTENCY_KEY_LIFETIME - timedelta(minutes=1),
        status_code=201,
    )
    fresh = IdempotencyKey.objects.create(
        user=buyer, key=f"fresh-{tag}", fingerprint="f" * 64, status_code=201
    )

    def check() -> None:
        assert not IdempotencyKey.objects.filter(pk=old.pk).exists()
        assert IdempotencyKey.objects.filter(pk=fresh.pk).exists()

    return Prepared((), check)


SCENARIOS: dict[str, Callable[[Any, Any], Prepared]] = {
    "orders.tasks.idempotency_keys_expire": idempotency_keys_expire,
    "payouts.tasks.payout_send": payout_send,
    "payouts.tasks.payouts_redispatch": payouts_redispatch,
    "refunds.tasks.refund_payouts_start": refund_payouts_start,
    "refunds.tasks.refund_payouts_redispatch": refund_payouts_redispatch,
    "refunds.tasks.refund_drafts_cleanup": refund_drafts_cleanup,
    "refundportal.tasks.enforce_deadlines": enforce_deadlines,
    "notifications.tasks.notifications_dispatch": notifications_dispatch,
    "notifications.tasks.notifications_redispatch": notifications_redispatch,
    "notifications.tasks.notification_deliver": notification_deliver,
    "notifications.tasks.notifications_deliver_chunk": notifications_deliver_chunk,
}


def test_every_task_has_a_duplicate_delivery_scenario():
    assert sorted(our_tasks()) == sorted(SCENARIOS), (
        "a task was added or removed: give it a scenario in SCENARIOS (prove it idempotent)"
    )


def deliver(name: str, args: tuple[Any, ...]) -> Any:
    result = our_tasks()[name].apply(args=args)
    assert result.successful(), result.traceback
    return result.result


@requires_postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_task_delivered_twice_then_twice_at_once_acts_once(name, buyer, seller):
    # given work the task must do, its message in flight
    prepared = SCENARIOS[name](buyer, seller)

    # when it is delivered, then delivered again
    deliver(name, prepared.args)
    prepared.check()
    after_first = snapshot()
    deliver(name, prepared.args)

    # then the second delivery changed nothing
    assert snapshot() == after_first

    # given the same work again, on fresh rows
    mail.outbox.clear()
    again = SCENARIOS[name](buyer, seller)

    # when two workers get the message at the same instant
    outcomes = run_together([lambda: deliver(name, again.args)] * 2)

    # then it was done exactly once, and a third delivery changes nothing either
    raise_unexpected(outcomes)
    again.check()
    after_race = snapshot()
    deliver(name, again.args)
    assert snapshot() == after_race


class WorkerKilled(BaseException):
    """The worker process died: nothing after this point of the task ran."""


@pytest.mark.django_db
def test_a_payout_redelivered_after_its_worker_died_past_the_gateway_pays_once(buyer, seller):
    # given a payout whose first delivery died after the gateway refunded, before recording it
    prepared = payout_send(buyer, seller)
    (payout_id,) = prepared.args
    with (
        mock.patch.object(payout_services, "_payout_settle_succeeded", side_effect=WorkerKilled),
        pytest.raises(WorkerKilled),
    ):
        our_tasks()["payouts.tasks.payout_send"].apply(args=prepared.args)
    assert Payout.objects.get(pk=payout_id).status == PayoutStatus.PENDING
    # and the dead worker's claim has run out (acks_late: the broker redelivers the message)
    Payout.objects.filter(pk=payout_id).update(claimed_until=timezone.now() - timedelta(seconds=1))

    # when the message is delivered again
    assert deliver("payouts.tasks.payout_send", prepared.args) == "succeeded"

    # then the gateway answered with the refund it made the first time: one refund, two calls
    refund = GatewayRefund.objects.get()
    assert (refund.idempotency_key, refund.calls) == (
        Payout.objects.get(pk=payout_id).idempotency_key,
        2,
    )
    assert Payout.objects.get(pk=payout_id).status == PayoutStatus.SUCCEEDED


# --- the Celery settings that make redelivery safe --------------------------------------------


def _transport_options(**env: str) -> dict[str, Any]:
    """The broker options production gets with Redis configured (a fresh interpreter)."""
    code = (
        "import json, refundportal.settings.base as s; "
        "print(json.dumps(s.CELERY_BROKER_TRANSPORT_OPTIONS))"
    )
    environment = {
        "PATH": "/usr/bin:/bin",
        "REDIS_URL": "redis://127.0.0.1:6399/0",
        "DATABASE_URL": "sqlite:////tmp/unused.sqlite3",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def _countdown_bounds() -> list[tuple[str, float | None]]:
    """Every `countdown=`/`eta=` in our task modules, with its provable upper bound: a number, a
    module constant, or `min(…, number)`. A function that only forwards its own `countdown`
    parameter is skipped: its callers' `countdown=` are checked where they are written."""
    found = []
    for module_name in sorted({task.__module__ for task in our_tasks().values()}):
        module = sys.modules[module_name]
        tree = ast.parse(Path(inspect.getfile(module)).read_text())
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)] + [tree]:
            params = (
                {a.arg for a in (*function.args.args, *function.args.kwonlyargs)}
                if isinstance(function, ast.FunctionDef)
                else set()
            )
            body = (
                function.body
                if isinstance(function, ast.FunctionDef)
                else [n for n in tree.body if not isinstance(n, ast.FunctionDef)]
            )
            for node in (n for stmt in body for n in ast.walk(stmt)):
                if not isinstance(node, ast.keyword) or node.arg not in {"countdown", "eta"}:
                    continue
                value, bound = node.value, None
                if isinstance(value, ast.Name) and value.id in params:
                    continue  # forwarded
                if isinstance(value, ast.Constant) and isinstance(value.value, int | float):
                    bound = value.value
                elif isinstance(value, ast.Name) and isinstance(
                    getattr(module, value.id, None), int | float
                ):
                    bound = getattr(module, value.id)
                elif isinstance(value, ast.Call) and getattr(value.func, "id", "") == "min":
                    consts = [a.value for a in value.args if isinstance(a, ast.Constant)]
                    bound = min(consts) if consts else None
                found.append((f"{module_name}:{node.lineno}", bound))
    return found


def test_every_task_has_a_time_limit_and_bounded_retries():
    for name, task in our_tasks().items():
        hard = task.time_limit or app.conf.task_time_limit
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        assert hard, f"{name} has no time limit"
        assert soft and soft < hard, f"{name}: the soft limit must come before the hard one"
        assert task.max_retries is not None, f"{name} retries forever"
        if getattr(task, "autoretry_for", ()):
            assert task.retry_backoff_max <= MAX_COUNTDOWN, name
        assert task.default_retry_delay <= MAX_COUNTDOWN, name
    for where, bound in _countdown_bounds():
        assert bound is not None and bound <= MAX_COUNTDOWN, (
            f"{where}: a countdown must be provably ≤ {MAX_COUNTDOWN} s (docs/architecture.md)"
        )


def test_late_acknowledgement_only_on_tasks_proven_idempotent():
    for name, task in our_tasks().items():
        if task.acks_late or task.reject_on_worker_lost:
            # Redelivered after a lost worker: only safe when a second run changes nothing.
            assert name in SCENARIOS, f"{name} is acked late but not proven idempotent"
        if task.reject_on_worker_lost:
            assert task.acks_late, f"{name}: reject_on_worker_lost means nothing without acks_late"
    # One message at a time per worker process: a long task never holds others reserved.
    assert app.conf.worker_prefetch_multiplier == 1


def test_redis_visibility_timeout_outlasts_every_countdown_and_time_limit():
    longest_run = max(task.time_limit or app.conf.task_time_limit for task in our_tasks().values())
    options = _transport_options()
    # A message with a countdown is reserved by the worker at once and acked only after it ran;
    # were it visible again before that, a second worker would run it too.
    assert options["visibility_timeout"] > MAX_COUNTDOWN + longest_run, options
    # The broker-tests' short timeout comes from the environment, for them only.
    assert _transport_options(CELERY_VISIBILITY_TIMEOUT="7")["visibility_timeout"] == 7


def test_one_beat_schedule_of_registered_idempotent_tasks():
    schedule = settings.CELERY_BEAT_SCHEDULE
    names = [entry["task"] for entry in schedule.values()]
    assert len(names) == len(set(names)), f"a task is scheduled twice: {names}"
    for name in names:
        assert name in SCENARIOS, f"beat runs {name}, which is not proven idempotent"
    # All beat schedules in one place (docs/architecture.md, Tasks and beat): nothing registers
    # periodic tasks in code.
    for folder in ("orders", "payouts", "refunds", "disputes", "notifications", "refundportal"):
        for path in (BASE_DIR / folder).rglob("*.py"):
            text = path.read_text()
            assert "add_periodic_task" not in text and "on_after_configure" not in text, path
    # The deployment runs exactly one beat, and no worker embeds one (`-B`).
    services = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"]
    commands = {name: service.get("command") or "" for name, service in services.items()}
    words = {name: (c if isinstance(c, list) else str(c).split()) for name, c in commands.items()}
    beats = [name for name, w in words.items() if "celery" in w and "beat" in w]
    assert len(beats) == 1, f"beat services: {beats}"
    assert services[beats[0]].get("deploy", {}).get("replicas", 1) == 1
    for name, w in words.items():
        if "worker" in w:
            assert "-B" not in w and "--beat" not in w, f"{name} embeds a beat"
