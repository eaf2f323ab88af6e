"""Faults in what the portal depends on: the gateway errs, times out or answers "pending", and
the broker (Redis) is unreachable while cases move. Nothing is lost, nothing is paid twice.

The gateway faults come from the fake gateway (docs/rules.md, Payouts):
`settings.FAKE_GATEWAY_MODE`, or a marker in the order's payment reference (`fail-`, `pending-`,
`timeout-`). The broker outage here is in-process (eager off, the broker URL pointed at a closed
port); the same story against a real `redis-server` and a real worker is in `test_broker.py`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification
from notifications.models import Status as NoticeStatus
from notifications.tasks import notifications_redispatch
from orders.models import Event, Order
from payouts.models import GatewayRefund, Payout, PayoutStatus
from payouts.services import PAYOUT_BACKOFF, PAYOUT_PENDING_READBACK
from payouts.tasks import payouts_redispatch
from refundportal.celery import app
from refunds.models import RefundCase, State
from refunds.tasks import refund_payouts_redispatch
from tests.conftest import api_client_for, requires_postgres
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

from .helpers import assert_paid_at_most_total, assert_paid_once


def accept_through_api(case: RefundCase, seller: Any) -> Any:
    url = reverse("api:refund-accept", kwargs={"public_id": case.public_id})
    return api_client_for(seller).post(url, {}, format="json")


def payout_of(case: RefundCase) -> Payout:
    return Payout.objects.get(idempotency_key=f"refund:{case.public_id}")


def later(minutes: float) -> Any:
    return time_machine.travel(timezone.now() + timedelta(minutes=minutes), tick=True)


# --- gateway faults ----------------------------------------------------------------------------


@pytest.fixture
def accepted(buyer, seller, django_capture_on_commit_callbacks):
    """Accept a fresh request on an order paid with `reference`; the payout goes out on commit."""

    def make(reference: str) -> RefundCase:
        order = OrderFactory(buyer=buyer, shop=seller.shops.get(), payment_reference=reference)
        case = file_refund(order, amount="59.90")
        with django_capture_on_commit_callbacks(execute=True):
            assert accept_through_api(case, seller).status_code == 200
        return RefundCase.objects.select_related("order").get(pk=case.pk)

    return make


def run_redispatch(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert payouts_redispatch.apply().successful()


def test_a_declined_refund_holds_its_reservation_and_is_paid_once_when_retried(
    accepted, settings, django_capture_on_commit_callbacks
):
    # given a gateway that declines
    settings.FAKE_GATEWAY_MODE = "fail"
    case = accepted("ch_decline_then_ok")

    # then the payout failed with the gateway's reason, the money is still reserved for it
    # (docs/rules.md, What is left to refund), the case waits, staff are told, and nothing was
    # refunded
    payout = payout_of(case)
    assert (payout.status, payout.attempts) == (PayoutStatus.FAILED, 1)
    assert "card_declined" in payout.failure_reason
    assert Order.objects.get(pk=case.order_id).refundable == Decimal("0.00")
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUND_PENDING
    assert Event.objects.filter(kind="payout.failed", payload__notify={"staff": True}).exists()
    assert not GatewayRefund.objects.exists()

    # when the gateway recovers and the re-dispatch runs before the backoff has passed
    settings.FAKE_GATEWAY_MODE = "succeed"
    run_redispatch(django_capture_on_commit_callbacks)
    assert payout_of(case).status == PayoutStatus.FAILED  # backoff respected

    # and again once it has passed
    with later(PAYOUT_BACKOFF[0].total_seconds() / 60 + 1):
        run_redispatch(django_capture_on_commit_callbacks)

    # then the same row, with the same key, paid once
    retried = payout_of(case)
    assert (retried.pk, retried.status, retried.attempts) == (payout.pk, PayoutStatus.SUCCEEDED, 2)
    assert_paid_once(case.order, key=f"refund:{case.public_id}", amount="59.90")
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUNDED


def test_a_reference_the_gateway_always_declines_never_pays_and_never_exceeds_the_total(
    accepted, django_capture_on_commit_callbacks
):
    # given an order whose payment the gateway always declines
    case = accepted("fail-ch_always")

    # when the re-dispatch retries it for a day
    for hours in (1, 2, 4, 8, 12, 24):
        with later(hours * 60):
            run_redispatch(django_capture_on_commit_callbacks)

    # then it is still failed (retries are capped), one row, one key, nothing refunded
    payout = payout_of(case)
    assert payout.status == PayoutStatus.FAILED
    assert 2 <= payout.attempts <= 8
    assert Payout.objects.filter(order=case.order).count() == 1
    assert not GatewayRefund.objects.exists()
    assert_paid_at_most_total(case.order)


@pytest.mark.parametrize("reference", ["timeout-ch_1", "pending-ch_1"])
def test_a_timeout_or_pending_answer_is_asked_again_with_the_same_key(
    reference, accepted, django_capture_on_commit_callbacks
):
    # given a gateway that made the refund but did not answer (timeout), or answered "pending"
    case = accepted(reference)

    # then the payout stays pending: neither failed (money may have moved) nor succeeded
    payout = payout_of(case)
    assert payout.status == PayoutStatus.PENDING
    assert payout.claimed_until is None
    assert GatewayRefund.objects.get().calls == 1
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUND_PENDING

    # when the re-dispatch asks again after the backoff (a pending refund waits for its
    # webhook, and is read back only after PAYOUT_PENDING_READBACK)
    wait = PAYOUT_PENDING_READBACK if reference.startswith("pending") else PAYOUT_BACKOFF[0]
    with later(wait.total_seconds() / 60 + 1):
        run_redispatch(django_capture_on_commit_callbacks)

    # then the gateway answered with the refund it had made: one refund, asked twice
    refund = GatewayRefund.objects.get()
    assert (refund.idempotency_key, refund.calls) == (f"refund:{case.public_id}", 2)
    assert payout_of(case).status == PayoutStatus.SUCCEEDED
    assert payout_of(case).gateway_reference == refund.reference
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUNDED
    assert_paid_once(case.order, key=f"refund:{case.public_id}", amount="59.90")


# --- the broker is unreachable ------------------------------------------------------------------


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reset_broker_pools() -> None:
    # Forget the pools (kombu keeps them per URL; a closed one would be handed out again).
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextlib.contextmanager
def broker_at(url: str) -> Iterator[None]:
    """Publish to `url` for real (eager off), as the web process does in production."""
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    _reset_broker_pools()
    app.conf.broker_url = url
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        _reset_broker_pools()
        app.conf.update(saved)


def _notices_sent_once() -> None:
    notices = list(Notification.objects.all())
    assert notices and {n.status for n in notices} == {NoticeStatus.SENT}
    assert Counter(m.to[0] for m in mail.outbox) == Counter(n.email for n in notices)


@requires_postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_redis_down_transitions_commit_and_go_out_once_it_is_back(buyer, seller):
    # given a requested case, and a case the seller let lapse (the sweep will auto-accept it)
    case = file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="59.90")
    past = timezone.now() - timedelta(days=3)
    lapsed = file_refund(
        OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=past), now=past, amount="20.00"
    )
    mail.outbox.clear()
    Notification.objects.all().delete()
    Event.objects.update(dispatched_at=timezone.now())

    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        # when the seller accepts and the sweep runs while Redis is unreachable
        started = time.monotonic()
        response = accept_through_api(case, seller)
        took = time.monotonic() - started
        call_command("enforce_deadlines")

    # then the request answered (quickly, not hanging on the broker) and both transitions
    # committed, their payouts and notices waiting in the database
    assert response.status_code == 200, response.content
    assert took < 15, f"the request waited {took:.1f}s for the broker"
    for c in (case, lapsed):
        assert RefundCase.objects.get(pk=c.pk).state == State.REFUND_PENDING
    assert Payout.objects.get(idempotency_key=f"refund:{case.public_id}").attempts == 0
    assert not GatewayRefund.objects.exists()
    assert Event.objects.filter(dispatched_at__isnull=True).exists()
    assert not mail.outbox

    # when Redis is back and beat's re-dispatchers run (eager: a worker consumes at once)
    for task in (refund_payouts_redispatch, payouts_redispatch, notifications_redispatch):
        assert task.apply().successful()

    # then each refund is paid once and every notice went out once
    assert_paid_once(case.order, key=f"refund:{case.public_id}", amount="59.90")
    assert_paid_once(lapsed.order, key=f"refund:{lapsed.public_id}", amount="20.00")
    for c in (case, lapsed):
        assert RefundCase.objects.get(pk=c.pk).state == State.REFUNDED
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()
    _notices_sent_once()

    # and running them again sends nothing more
    sent = len(mail.outbox)
    for task in (refund_payouts_redispatch, payouts_redispatch, notifications_redispatch):
        assert task.apply().successful()
    assert len(mail.outbox) == sent
    assert GatewayRefund.objects.count() == 2
