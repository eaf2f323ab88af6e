"""Order services (docs/rules.md, Orders; Windows; Refund cap): ingestion, cancellation, the refund
cap under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connections, transaction
from django.db.models import F, Sum

from kernel.errors import (
    AmountExceedsRefundable,
    Duplicate,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
    WindowClosed,
)
from orders import hooks, services
from orders.models import Event, Order, User
from payouts import services as payout_services
from payouts.models import GatewayRefund, Payout, PayoutStatus
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory, shipped

CHINA = ZoneInfo("Asia/Shanghai")
PLACED_AT = datetime(2026, 3, 1, 23, 30, tzinfo=CHINA)
SECOND = timedelta(seconds=1)
THREADS = 20


def ingest(**overrides: Any) -> Order:
    kwargs: dict[str, Any] = {
        "number": "MP-1",
        "buyer_email": "b@example.com",
        "buyer_name": "B",
        "seller_email": "s@example.com",
        "seller_name": "S",
        "currency": "EUR",
        "total": Decimal("30.00"),
        "payment_method": "paypal",
        "payment_reference": "PP-1",
        "placed_at": PLACED_AT,
        "items": [services.ItemIn("A", "Apron", 3, Decimal("10.00"))],
    }
    kwargs.update(overrides)
    return services.order_ingest(**kwargs)


def reserved_of(order: Order) -> Decimal:
    return Order.objects.values_list("reserved", flat=True).get(pk=order.pk)


def live_payout_sum(order: Order) -> Decimal:
    total = (
        Payout.objects.filter(order=order)
        .exclude(status=PayoutStatus.CANCELLED)
        .aggregate(s=Sum("amount"))["s"]
    )
    return total or Decimal("0")


# --- ingestion ----------------------------------------------------------------------------------


def test_ingestion_creates_accounts_and_copies_the_return_policy(db):
    order = ingest()
    assert order.buyer.email == "b@example.com"
    assert order.shop.owner.email == "s@example.com"
    assert order.return_policy == order.shop.return_policy
    assert order.payment_method_label == "PayPal"
    assert Event.objects.get(order=order).kind == "order.received"


def test_ingestion_that_fails_half_way_writes_nothing(db):
    # given a body whose buyer and seller turn out to be one account (found after the lookups)
    users = User.objects.count()

    # when it is ingested
    with pytest.raises(ValidationFailed):
        ingest(seller_email="B@example.com")

    # then the accounts created on the way are rolled back with the order
    assert User.objects.count() == users
    assert not Order.objects.exists()


def test_ingestion_refuses_a_total_that_is_not_the_sum(db):
    with pytest.raises(ValidationFailed) as excinfo:
        ingest(total=Decimal("31.00"))
    assert excinfo.value.fields == {"total": ["Does not equal the sum of quantity × unit_price."]}


def test_ingesting_a_number_twice_is_a_duplicate(db):
    ingest()
    with pytest.raises(Duplicate):
        ingest(buyer_email="c@example.com")
    assert Order.objects.count() == 1


# --- instant cancellation -----------------------------------------------------------------------


@pytest.fixture
def placed_order(order):
    Order.objects.filter(pk=order.pk).update(placed_at=PLACED_AT)
    return Order.objects.get(pk=order.pk)


def test_cancel_window_edges_in_the_marketplace_zone(buyer, placed_order):
    # given an order placed 1 Mar 2026 23:30 China time: the window ends 2 Mar 23:30 China time
    until = PLACED_AT + timedelta(hours=24)

    # then one second after is too late and one second before is in time
    with pytest.raises(WindowClosed, match="2 Mar 2026, 23:30 Asia/Shanghai"):
        payout_services.order_cancel_by_buyer(order=placed_order, actor=buyer, now=until + SECOND)
    payout = payout_services.order_cancel_by_buyer(
        order=placed_order, actor=buyer, now=until - SECOND
    )
    assert payout.amount == Decimal("59.90")
    assert Order.objects.get(pk=placed_order.pk).status == "cancelled"
    assert reserved_of(placed_order) == Decimal("59.90")


def test_seller_cannot_use_the_buyers_cancel(seller, order):
    with pytest.raises(NotAllowed):
        payout_services.order_cancel_by_buyer(order=order, actor=seller)


def test_a_cancel_guard_refuses_and_nothing_changes(buyer, order, monkeypatch):
    # given an app above orders that forbids cancelling (e.g. a refund case is open)
    def hold(order_ids: list[int]) -> dict[int, str]:
        return dict.fromkeys(order_ids, "A refund case is open on this order.")

    monkeypatch.setattr(hooks, "cancel_holds", [hold])

    with pytest.raises(InvalidTransition, match="refund case"):
        payout_services.order_cancel_by_buyer(order=order, actor=buyer)
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert not Payout.objects.exists()


def test_cancel_after_shipping_is_refused(buyer, order):
    shipped(order)
    with pytest.raises(InvalidTransition):
        payout_services.order_cancel_by_buyer(order=order, actor=buyer)


# --- the refund cap -----------------------------------------------------------------------------


def test_payout_create_is_idempotent_by_key(order):
    with transaction.atomic():
        locked = services.order_lock(order)
        first = payout_services.payout_create(
            order=locked,
            amount=Decimal("10.00"),
            purpose="cancel",
            subject_id=None,
            idempotency_key="k1",
            actor=None,
        )
        again = payout_services.payout_create(
            order=locked,
            amount=Decimal("10.00"),
            purpose="cancel",
            subject_id=None,
            idempotency_key="k1",
            actor=None,
        )
    assert again.pk == first.pk
    assert reserved_of(order) == Decimal("10.00")


def test_payout_over_refundable_is_refused(order):
    with transaction.atomic():
        locked = services.order_lock(order)
        with pytest.raises(AmountExceedsRefundable):
            payout_services.payout_create(
                order=locked,
                amount=Decimal("59.91"),
                purpose="cancel",
                subject_id=None,
                idempotency_key="k1",
                actor=None,
            )
    assert reserved_of(order) == Decimal("0")


def test_database_refuses_an_over_cap_reservation_even_without_the_lock(order):
    # when code that forgot every rule writes past the total directly
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(reserved=F("total") + 1)
    # or below zero
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(reserved=-1)

    # then the check constraints said no
    assert reserved_of(order) == Decimal("0")


def run_at_once(
    count: int, work: Callable[[int], Any], prepare: Callable[[int], Any] | None = None
) -> list[tuple[str, Any]]:
    """Run `work` in `count` real threads released together; each has its own connection."""
    barrier = threading.Barrier(count)
    results: list[tuple[str, Any]] = [("missing", None)] * count

    def worker(index: int) -> None:
        try:
            prepared = prepare(index) if prepare else None
            barrier.wait(timeout=30)
            results[index] = ("ok", work(index) if prepare is None else work(prepared))
        except Exception as exc:
            results[index] = ("error", exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_cancels_pay_once(buyer, order):
    # given 20 requests of the buyer cancelling the same order at the same moment
    results = run_at_once(
        THREADS, lambda i: payout_services.order_cancel_by_buyer(order=order, actor=buyer)
    )

    # then exactly one cancels; every other one finds it cancelled already
    ok = [value for status, value in results if status == "ok"]
    errors = [value for status, value in results if status == "error"]
    assert len(ok) == 1
    assert all(isinstance(exc, InvalidTransition) for exc in errors), errors
    assert Payout.objects.filter(order=order).count() == 1
    assert live_payout_sum(order) == order.total == reserved_of(order)
    # and the gateway refunded it once (the payout was sent when the winner committed)
    refund = GatewayRefund.objects.get()
    assert (refund.amount, refund.calls) == (Decimal("59.90"), 1)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_payouts_never_exceed_the_total(order):
    # given 20 payouts of 10.00 on a 59.90 order, each with its own key, in its own transaction
    def create(index: int) -> Payout:
        with transaction.atomic():
            locked = services.order_lock(order)
            return payout_services.payout_create(
                order=locked,
                amount=Decimal("10.00"),
                purpose="cancel",
                subject_id=None,
                idempotency_key=f"race:{index}",
                actor=None,
            )

    results = run_at_once(THREADS, create)

    # then five fit and fifteen are refused; the sum stays within the total
    ok = [value for status, value in results if status == "ok"]
    errors = [value for status, value in results if status == "error"]
    assert len(ok) == 5
    assert all(isinstance(exc, AmountExceedsRefundable) for exc in errors), errors
    assert live_payout_sum(order) == Decimal("50.00") == reserved_of(order)
    assert live_payout_sum(order) <= order.total


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_the_cap_holds_for_callers_that_forgot_the_lock(order):
    # given 20 callers each holding a stale copy of the order (reserved 0 when they read it)
    def prepare(index: int) -> tuple[int, Order]:
        return index, Order.objects.get(pk=order.pk)

    def create(prepared: tuple[int, Order]) -> Payout:
        index, stale = prepared
        with transaction.atomic():
            return payout_services.payout_create(
                order=stale,
                amount=Decimal("10.00"),
                purpose="cancel",
                subject_id=None,
                idempotency_key=f"nolock:{index}",
                actor=None,
            )

    results = run_at_once(THREADS, create, prepare)

    # then the F() increment under the check constraint still stops at the total
    ok = [value for status, value in results if status == "ok"]
    errors = [value for status, value in results if status == "error"]
    assert len(ok) == 5
    assert all(isinstance(exc, AmountExceedsRefundable) for exc in errors), errors
    assert live_payout_sum(order) == Decimal("50.00") == reserved_of(order)


def test_order_factory_total_matches_its_lines(db):
    # guard for the fixtures above: the cap tests assume a 59.90 order
    order = OrderFactory()
    assert sum(i.line_total for i in order.items.all()) == order.total == Decimal("59.90")
