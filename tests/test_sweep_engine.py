"""The sweep engine (kernel/sweeps.py) with the refund sweeps on it.

A transition sweep moves each due row to exactly what the model's own @transition method makes
of it, and writes the event the per-case services build; every due row moves exactly once
however often and however concurrently the sweep runs; a row not yet due is untouched.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from unittest import mock
from uuid import uuid4

import pytest
from django.db import connection, connections
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kernel import windows
from kernel.sweeps import After, Sweep, fsm_outcomes, run_sweep, sweep_moves
from orders.models import Event
from payouts.events import payout_overdue_event
from payouts.models import Payout
from payouts.sweeps import payouts_overdue_alert
from refunds.events import case_event
from refunds.models import ClosedReason, RefundCase, State
from refunds.sweeps import refund_sweeps_run, reminder_sweeps, transition_sweeps
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory, ShopFactory, UserFactory

_numbers = count(1)


def _now() -> datetime:
    # A fixed instant with microseconds, so both ISO forms (with and without a fraction) occur.
    return timezone.now().replace(microsecond=123456)


def _sweeps(now: datetime) -> dict[str, Sweep]:
    return {s.name: s for s in [*transition_sweeps(), *reminder_sweeps(now)]}


# --- data -------------------------------------------------------------------------------------

# Orders paid in every way a label is printed for (docs/rules.md, Orders: "Visa ••4242").
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
TRANSITION_SWEEPS = [s.name for s in transition_sweeps()]


# --- the sweep applies the model's own transition ---------------------------------------------


def _snapshot(ids: set[int]) -> dict[int, dict[str, Any]]:
    return {case.pk: model_to_dict(case) for case in RefundCase.objects.filter(id__in=ids)}


@pytest.mark.parametrize("name", TRANSITION_SWEEPS)
def test_given_due_cases_when_swept_then_each_is_what_its_transition_method_makes_of_it(
    shops, name
):
    # given due cases across local days, and what the model's @transition method makes of
    # each when called at its deadline (the next clock starts at the deadline)
    now = _now()
    sweep = _sweeps(now)[name]
    assert sweep.transition is not None
    ids, _later = _dataset(sweep, shops, now, due=12)
    expected = {}
    for case in RefundCase.objects.filter(id__in=ids):
        getattr(case, sweep.transition)(at=getattr(case, sweep.deadline))
        expected[case.pk] = model_to_dict(case)

    # when
    moves = sweep_moves(sweep, now=now, batch_size=5)

    # then the rows are field for field what the method made of them
    assert sorted(pk for pk, _state in moves) == sorted(ids)
    assert _snapshot(ids) == expected
    assert dict(moves) == {pk: row["state"] for pk, row in expected.items()}


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_due_cases_when_swept_then_each_event_is_the_one_the_services_build(shops, name):
    # given
    now = _now()
    sweep = _sweeps(now)[name]
    ids, _later = _dataset(sweep, shops, now, due=6)
    before = {c.pk: c.state for c in RefundCase.objects.filter(id__in=ids)}

    # when
    run_sweep(sweep, now=now, batch_size=4)

    # then
    events = _events(ids)
    assert len(events) == len(ids)
    for event in events:
        case = RefundCase.objects.select_related("order__shop").get(public_id=event.case_id)
        expected = case_event(
            case=case, kind=sweep.event_kind, actor=None, from_state=before[case.pk], at=now
        )
        assert event.payload == expected.payload
        assert (event.kind, event.from_state, event.to_state, event.order_id) == (
            expected.kind,
            expected.from_state,
            expected.to_state,
            expected.order_id,
        )
        assert (event.actor_id, event.note, event.created_at) == (None, "", now)


def test_auto_accept_with_return_gets_the_calendar_day_return_by_of_its_local_date(shops):
    # given: deadlines on both sides of a marketplace-local midnight
    now = _now()
    sweep = _sweeps(now)["auto_accept"]
    midnight = windows.to_marketplace(now).replace(hour=0, minute=0, second=0, microsecond=0)
    before = _make(sweep, shops[0], deadline=midnight - timedelta(microseconds=1), i=0)
    at = _make(sweep, shops[0], deadline=midnight, i=2)

    # when
    run_sweep(sweep, now=now)

    # then
    before.refresh_from_db()
    at.refresh_from_db()
    assert before.state == at.state == State.AWAITING_RETURN
    assert before.return_by == windows.return_by(rma_issued_at=before.respond_by)
    assert at.return_by == windows.return_by(rma_issued_at=at.respond_by)
    assert at.return_by - before.return_by == timedelta(days=1)


def test_every_system_transition_of_a_case_is_read_by_a_sweep():
    swept = {s.transition for s in transition_sweeps()}
    assert swept == {"auto_accept", "lapse_offer", "expire_return", "auto_confirm_return"}
    for method in swept:
        assert method is not None and fsm_outcomes(RefundCase, method)


# --- exactly once -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_due_rows_when_swept_twice_then_each_moves_once_and_a_later_row_stays(shops, name):
    # given
    now = _now()
    sweep = _sweeps(now)[name]
    ids, later = _dataset(sweep, shops, now, due=11)
    later_before = model_to_dict(later) | {"updated_at": later.updated_at}

    # when
    first = run_sweep(sweep, now=now, batch_size=4)
    second = run_sweep(sweep, now=now, batch_size=4)

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


def test_limit_stops_at_the_limit(shops):
    now = _now()
    sweep = _sweeps(now)["offer_lapse"]
    _dataset(sweep, shops, now, due=9)

    moved = run_sweep(sweep, now=now, batch_size=4, limit=6)

    assert len(moved) == 6
    assert Event.objects.count() == 6


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_given_two_concurrent_sweeps_then_every_due_row_moves_exactly_once(name):
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
            results[n] = run_sweep(sweep, now=now, batch_size=3)
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


# --- claims and declarations -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SWEEPS)
def test_a_batch_costs_the_same_queries_at_n_and_3n_rows(shops, name):
    # given N due rows, swept in one batch, then 3N more
    now = _now()
    sweep = _sweeps(now)[name]

    def queries_for(due: int) -> int:
        _dataset(sweep, shops, now, due=due)
        with CaptureQueriesContext(connection) as ctx:
            moved = run_sweep(sweep, now=now, batch_size=100)
        assert len(moved) == due
        return len(ctx.captured_queries)

    # when
    at_n, at_3n = queries_for(4), queries_for(12)

    # then: set-based, not a query per row; only a calendar-day value (auto-accept's return_by)
    # adds one UPDATE per marketplace-local day the deadlines span (3N rows span 3-4 more days)
    if name == "auto_accept":
        assert at_3n - at_n <= 4
    else:
        assert at_3n == at_n


def test_after_takes_exact_duration_windows_only(settings):
    assert After("dispute_filing").duration() == timedelta(hours=48)
    with pytest.raises(Exception, match="counted in days"):
        After("return_shipping_days").duration()


def test_sources_come_from_the_state_machine():
    sweeps = {s.name: s for s in transition_sweeps()}
    assert sweeps["auto_accept"].sources() == [State.REQUESTED]
    assert sweeps["offer_lapse"].sources() == [State.OFFER_MADE]
    assert sweeps["return_expiry"].sources() == [State.AWAITING_RETURN]
    assert sweeps["auto_confirm"].sources() == [State.RETURN_SHIPPED]
    assert connection.vendor in {"postgresql", "sqlite"}


# --- payouts, on the same engine ------------------------------------------------------------------


def _unpaid_payout(shop, *, created_at: datetime, i: int) -> Payout:
    order = OrderFactory(shop=shop, number=f"ORD-PO-{next(_numbers)}", **PAYMENTS[i % 5])
    return Payout.objects.create(
        order=order,
        amount=Decimal("12.30"),
        currency=order.currency,
        payment_method=order.payment_method,
        payment_reference="ref",
        idempotency_key=f"refund:test-{next(_numbers)}",
        purpose="refund",
        subject_id=uuid4(),
        created_at=created_at,
    )


def test_the_payout_sweep_alerts_once_with_the_event_its_builder_makes(shops):
    # given unpaid payouts past the hard deadline (N, then 3N more) and one a second short of it
    now = _now()
    hard = windows.window("payout_hard")
    assert isinstance(hard, timedelta)
    early = _unpaid_payout(shops[0], created_at=now - hard + timedelta(seconds=1), i=0)

    def alert(due: int) -> tuple[int, int]:
        for i in range(due):
            _unpaid_payout(shops[i % 2], created_at=now - hard - timedelta(hours=i), i=i)
        with CaptureQueriesContext(connection) as ctx:
            alerted = payouts_overdue_alert(now=now, batch_size=100)
        return alerted, len(ctx.captured_queries)

    # when
    (at_n, queries_n), (at_3n, queries_3n) = alert(4), alert(12)

    # then: each once, set-based, and each event the one payout_overdue_event builds
    assert (at_n, at_3n) == (4, 12) and queries_n == queries_3n
    assert payouts_overdue_alert(now=now) == 0
    early.refresh_from_db()
    assert early.overdue_alerted_at is None
    events = Event.objects.filter(kind="payout.overdue")
    assert events.count() == 16
    for event in events:
        payout = Payout.objects.select_related("order__shop").get(
            public_id=event.payload["payout_id"]
        )
        assert payout.overdue_alerted_at == now
        expected = payout_overdue_event(payout=payout, at=now)
        assert event.payload == expected.payload
        assert (event.from_state, event.to_state) == ("pending", "pending")
        assert event.case_id == payout.subject_id
