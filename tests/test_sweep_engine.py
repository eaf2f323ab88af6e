"""The sweep engine (orders/sweeps.py) with the refund sweeps on it (STYLE §6).

Both paths — one SQL statement per batch on PostgreSQL, the portable ORM path elsewhere — must
move the same rows to the same values and write the same events; every due row moves exactly
once however often and however concurrently the sweep runs; a row not yet due is untouched.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from unittest import mock

import pytest
from django.db import connection, connections, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import windows
from orders.models import Event
from orders.sweeps import (
    Outcome,
    PerLocalDay,
    Shifted,
    Sweep,
    run_sweep,
    sweep_moves,
    sweep_statement,
)
from payouts.models import Payout
from refunds.models import ClosedReason, RefundCase, State
from refunds.sweeps import (
    build_case_events,
    refund_sweeps_run,
    reminder_sweeps,
    transition_sweeps,
)
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory, ShopFactory, UserFactory

_numbers = count(1)


def _now() -> datetime:
    # A fixed instant with microseconds, so both ISO forms (with and without a fraction) occur.
    return timezone.now().replace(microsecond=123456)


def _sweeps(now: datetime) -> dict[str, Sweep]:
    return {s.name: s for s in [*transition_sweeps(), *reminder_sweeps(now)]}


# --- data -------------------------------------------------------------------------------------

# Orders paid in every way a label is printed for (SPEC §2: "Visa ••4242").
PAYMENTS = [
    {"payment_method": "card", "card_brand": "Visa", "card_last4": "4242"},
    {"payment_method": "card", "card_brand": "", "card_last4": "0005"},
    {"payment_method": "card", "card_brand": "", "card_last4": ""},
    {"payment_method": "paypal", "card_brand": "", "card_last4": ""},
    {"payment_method": "bank_transfer", "card_brand": "", "card_last4": ""},
]


@pytest.fixture
def shops(db):
    return [ShopFactory(owner=UserFactory(), name=name) for name in ("Ünïcode “Shop”", "Plain")]


def _case(shop, *, state: str, i: int = 0, **fields: Any) -> RefundCase:
    order = OrderFactory(
        shop=shop,
        number=f"ORD-SW-{next(_numbers)}",
        currency="EUR",
        items=[("SKU-SW", "Kettle", 1, Decimal("120.50"))],
        **PAYMENTS[i % len(PAYMENTS)],
    )
    base: dict[str, Any] = {
        "order": order,
        "reason": "damaged",
        "amount": Decimal("99.90"),
        "currency": "EUR",
        "state": state,
        "respond_by": timezone.now() - timedelta(days=10),
    }
    base.update(fields)
    return RefundCase.objects.create(**base)


def _due_value(sweep: Sweep, now: datetime, i: int) -> datetime:
    """A deadline at or before the sweep's cutoff: spread over several marketplace-local days,
    whole seconds for some rows, exactly the cutoff for one."""
    cutoff = sweep.cutoff(now)
    if i == 0:
        return cutoff
    value = cutoff - timedelta(hours=7 * i, microseconds=i * 1111)
    if sweep.extra_filter is not None:  # reminders: still in the future
        value = max(value, now + timedelta(seconds=1 + i))
    return value.replace(microsecond=0) if i % 3 == 0 else value


def _make(sweep: Sweep, shop, *, deadline: datetime, i: int) -> RefundCase:
    """A case in the sweep's source state with its deadline at `deadline`."""
    state = sweep.sources()[0]
    fields: dict[str, Any] = {sweep.deadline: deadline}
    if state == State.REQUESTED:
        fields["return_item"] = i % 2 == 0
        if fields["return_item"]:
            fields["return_number"] = f"RMA-T{next(_numbers):07d}"
    elif state == State.OFFER_MADE:
        fields.update(offer_amount=Decimal("50.005"), answered_at=deadline - timedelta(hours=48))
    elif state == State.AWAITING_RETURN:
        fields.update(
            return_item=True,
            return_number=f"RMA-T{next(_numbers):07d}",
            rma_issued_at=deadline - timedelta(days=7),
            approved_amount=Decimal("99.90"),
        )
    elif state == State.RETURN_SHIPPED:
        fields.update(
            return_item=True,
            return_number=f"RMA-T{next(_numbers):07d}",
            rma_issued_at=deadline - timedelta(days=20),
            return_shipped_at=deadline - timedelta(days=14),
            approved_amount=Decimal("99.90"),
            return_carrier="SF",
            return_tracking_number="SF1",
        )
    elif state == State.CLOSED:
        fields.update(closed_reason=ClosedReason.REJECTED, closed_at=deadline - timedelta(hours=48))
    return _case(shop, state=state, i=i, **fields)


def _dataset(sweep: Sweep, shops, now: datetime, *, due: int) -> tuple[set[int], RefundCase]:
    ids = {
        _make(sweep, shops[i % 2], deadline=_due_value(sweep, now, i), i=i).pk for i in range(due)
    }
    # One second after the cutoff: not due yet, must stay exactly as it is.
    later = _make(sweep, shops[0], deadline=sweep.cutoff(now) + timedelta(seconds=1), i=1)
    return ids, later


def _events(ids: set[int] | None = None) -> list[Event]:
    qs = Event.objects.order_by("id")
    if ids is not None:
        qs = qs.filter(case_id__in=RefundCase.objects.filter(id__in=ids).values("public_id"))
    return list(qs)


ALL_SWEEPS = [s.name for s in [*transition_sweeps(), *reminder_sweeps(timezone.now())]]
PATHS = [
    pytest.param(True, id="portable"),
    pytest.param(False, id="postgres", marks=requires_postgres),
]


# --- the two paths agree ----------------------------------------------------------------------


def _snapshot(ids: set[int]) -> dict[int, dict[str, Any]]:
    return {case.pk: model_to_dict(case) for case in RefundCase.objects.filter(id__in=ids)}


def _parse(payload: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in payload.items():
        if key.endswith("_by") and value is not None:
            parsed = datetime.fromisoformat(value)
            assert parsed.utcoffset() is not None, f"{key}={value} has no offset"
            value = parsed
        out[key] = value
    return out


@requires_postgres
@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_due_cases_when_swept_by_each_path_then_rows_and_events_are_the_same(shops, name):
    # given
    now = _now()
    sweep = _sweeps(now)[name]
    ids, _later = _dataset(sweep, shops, now, due=12)

    def run(portable: bool) -> tuple[list[int], dict, list[dict]]:
        with transaction.atomic():
            moved = sweep_moves(
                sweep, now=now, build_events=build_case_events, batch_size=5, portable=portable
            )
            rows = _snapshot(ids)
            events = [
                {
                    "case_id": e.case_id,
                    "order_id": e.order_id,
                    "kind": e.kind,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                    "actor": e.actor_id,
                    "note": e.note,
                    "created_at": e.created_at,
                    "payload": e.payload,
                }
                for e in _events(ids)
            ]
            transaction.set_rollback(True)
        return moved, rows, sorted(events, key=lambda e: str(e["case_id"]))

    # when
    moved_orm, rows_orm, events_orm = run(portable=True)
    moved_sql, rows_sql, events_sql = run(portable=False)

    # then
    assert sorted(moved_orm) == sorted(moved_sql)
    assert sorted(pk for pk, _state in moved_sql) == sorted(ids)
    assert all(rows_sql[pk]["state"] == state for pk, state in moved_sql)
    assert rows_orm == rows_sql
    assert len(events_orm) == len(events_sql) == len(ids)
    for orm, sql in zip(events_orm, events_sql, strict=True):
        assert set(orm["payload"]) == set(sql["payload"])
        assert _parse(orm["payload"]) == _parse(sql["payload"])
        # Tighter than consumers need: the SQL writes the very strings Python writes.
        assert orm == sql


@requires_postgres
def test_auto_accept_with_return_gets_the_calendar_day_return_by_of_its_local_date(shops):
    # given: deadlines on both sides of a marketplace-local midnight
    now = _now()
    sweep = _sweeps(now)["auto_accept"]
    midnight = windows.to_marketplace(now).replace(hour=0, minute=0, second=0, microsecond=0)
    before = _make(sweep, shops[0], deadline=midnight - timedelta(microseconds=1), i=0)
    at = _make(sweep, shops[0], deadline=midnight, i=2)

    # when
    run_sweep(sweep, now=now, build_events=build_case_events)

    # then
    before.refresh_from_db()
    at.refresh_from_db()
    assert before.state == at.state == State.AWAITING_RETURN
    assert before.return_by == windows.return_by(rma_issued_at=before.respond_by)
    assert at.return_by == windows.return_by(rma_issued_at=at.respond_by)
    assert at.return_by - before.return_by == timedelta(days=1)


# --- exactly once -----------------------------------------------------------------------------


@pytest.mark.parametrize("portable", PATHS)
@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_due_rows_when_swept_twice_then_each_moves_once_and_a_later_row_stays(
    shops, name, portable
):
    # given
    now = _now()
    sweep = _sweeps(now)[name]
    ids, later = _dataset(sweep, shops, now, due=11)
    later_before = model_to_dict(later) | {"updated_at": later.updated_at}

    # when
    first = run_sweep(
        sweep, now=now, build_events=build_case_events, batch_size=4, portable=portable
    )
    second = run_sweep(
        sweep, now=now, build_events=build_case_events, batch_size=4, portable=portable
    )

    # then
    assert sorted(first) == sorted(ids)
    assert second == []
    per_case = Counter(e.case_id for e in _events())
    assert len(per_case) == len(ids)
    assert set(per_case.values()) == {1}
    assert {e.kind for e in _events()} == {sweep.event_kind}
    later.refresh_from_db()
    assert model_to_dict(later) | {"updated_at": later.updated_at} == later_before
    assert not Event.objects.filter(case_id=later.public_id).exists()


@pytest.mark.parametrize("portable", PATHS)
def test_limit_stops_at_the_limit(shops, portable):
    now = _now()
    sweep = _sweeps(now)["offer_lapse"]
    _dataset(sweep, shops, now, due=9)

    moved = run_sweep(
        sweep, now=now, build_events=build_case_events, batch_size=4, limit=6, portable=portable
    )

    assert len(moved) == 6
    assert Event.objects.count() == 6


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("portable", [True, False], ids=["portable", "postgres"])
@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_two_concurrent_sweeps_then_every_due_row_moves_exactly_once(name, portable):
    # given
    shops = [ShopFactory(owner=UserFactory()) for _ in range(2)]
    now = _now()
    sweep = _sweeps(now)[name]
    ids, later = _dataset(sweep, shops, now, due=40)
    barrier = threading.Barrier(2)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[n] = run_sweep(
                sweep, now=now, build_events=build_case_events, batch_size=3, portable=portable
            )
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    # when
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    # then
    assert not errors, errors
    a, b = results[0], results[1]
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(ids)
    per_case = Counter(e.case_id for e in _events())
    assert len(per_case) == len(ids) and set(per_case.values()) == {1}
    assert not Event.objects.filter(case_id=later.public_id).exists()


def test_the_pass_queues_payouts_only_for_cases_it_approved(shops):
    # given: two requests past respond_by, one of them needing the item back
    now = _now()
    sweep = _sweeps(now)["auto_accept"]
    pay_now = _make(sweep, shops[0], deadline=now - timedelta(hours=1), i=1)
    with_return = _make(sweep, shops[1], deadline=now - timedelta(hours=2), i=0)
    assert with_return.return_item and not pay_now.return_item

    # when (tasks run eagerly under the test settings)
    moved = refund_sweeps_run(now=now)

    # then
    assert moved["auto_accept"] == 2
    assert list(Payout.objects.values_list("subject_id", flat=True)) == [pay_now.public_id]
    with_return.refresh_from_db()
    assert with_return.state == State.AWAITING_RETURN and with_return.payout_id is None


def test_broker_down_the_pass_still_runs_and_tries_the_broker_once(shops, caplog):
    # given: more approved cases than one follow-up task takes, and no broker
    from kombu.exceptions import OperationalError

    from refunds import tasks

    now = _now()
    sweep = _sweeps(now)["auto_accept"]
    for i in range(3):
        _make(sweep, shops[0], deadline=now - timedelta(hours=1 + i), i=1)
    reminder = _make(
        _sweeps(now)["remind_seller_response"], shops[1], deadline=now + timedelta(hours=2), i=1
    )

    # when
    with (
        mock.patch.object(
            tasks.refund_payouts_start, "delay", side_effect=OperationalError("down")
        ) as delay,
        mock.patch("refunds.sweeps._PayoutQueue.SIZE", 1),
    ):
        moved = refund_sweeps_run(now=now)

    # then: the moves stand, the reminder sweep ran, one attempt, the rest left to re-dispatch
    assert moved["auto_accept"] == 3
    assert moved["remind_seller_response"] == 1
    reminder.refresh_from_db()
    assert reminder.respond_reminded_at == now
    assert delay.call_count == 1
    assert "3 case(s) left for the payout re-dispatch" in caplog.text


# --- the PostgreSQL statement -------------------------------------------------------------------


@requires_postgres
@pytest.mark.django_db
@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_the_postgres_path_is_one_statement_per_batch_that_claims_with_skip_locked(shops, name):
    now = _now()
    sweep = _sweeps(now)[name]
    with transaction.atomic():
        sql, _params = sweep_statement(sweep, now=now, build_events=build_case_events)
    assert sql.startswith("WITH moved AS (UPDATE")
    assert "= ANY(ARRAY(SELECT" in sql
    assert "FOR UPDATE" in sql and "SKIP LOCKED" in sql
    assert "INSERT INTO" in sql


@requires_postgres
def test_each_batch_of_the_postgres_path_is_one_statement(shops):
    now = _now()
    sweep = _sweeps(now)["offer_lapse"]
    _dataset(sweep, shops, now, due=10)

    with CaptureQueriesContext(connection) as ctx:
        run_sweep(sweep, now=now, build_events=build_case_events, batch_size=4)

    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    # batches of 4, 4 and 2: one statement each (the last, short batch ends the run)
    assert len(statements) == 3
    assert all(s.startswith("WITH moved AS (UPDATE") for s in statements)
    assert Event.objects.count() == 10


# --- declarations -----------------------------------------------------------------------------


def test_exact_duration_windows_only_for_shifted(settings):
    assert Shifted("offer_by", "dispute_filing").duration() == timedelta(hours=48)
    with pytest.raises(Exception, match="counted in days"):
        Shifted("offer_by", "return_shipping_days").duration()


def test_per_local_day_must_read_the_deadline():
    with pytest.raises(Exception, match="PerLocalDay"):
        Sweep(
            name="x",
            model=RefundCase,
            method="auto_accept",
            deadline="respond_by",
            event_kind="refund.auto_accepted",
            outcomes=(Outcome(values={"return_by": PerLocalDay("offer_by", lambda d: d)}),),
        )


def test_sources_come_from_the_state_machine():
    sweeps = {s.name: s for s in transition_sweeps()}
    assert sweeps["auto_accept"].sources() == [State.REQUESTED]
    assert sweeps["offer_lapse"].sources() == [State.OFFER_MADE]
    assert sweeps["return_expiry"].sources() == [State.AWAITING_RETURN]
    assert sweeps["auto_confirm"].sources() == [State.RETURN_SHIPPED]
    assert connection.vendor in {"postgresql", "sqlite"}
