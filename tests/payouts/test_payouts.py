"""Payouts (docs/rules.md, Paid exactly once): paid once, judged by the fake gateway's own ledger
(`GatewayRefund`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from celery.exceptions import Retry
from django.db import transaction
from django.utils import timezone

from kernel.errors import InvalidTransition, NotAllowed
from orders import services
from orders.models import Event, Order
from payouts import services as payout_services
from payouts.models import GatewayRefund, Payout, PayoutStatus
from payouts.tasks import payout_send
from tests.orders.factories import OrderFactory


def make_payout(order: Order, amount: str = "59.90", key: str = "cancel:test") -> Payout:
    """A pending payout, not yet sent: the `db` fixture never commits, so on_commit never runs."""
    with transaction.atomic():
        locked = services.order_lock(order)
        return payout_services.payout_create(
            order=locked,
            amount=Decimal(amount),
            purpose="cancel",
            subject_id=None,
            idempotency_key=key,
            actor=None,
        )


def fresh(payout: Payout) -> Payout:
    return Payout.objects.select_related("order").get(pk=payout.pk)


def refundable(order: Order) -> Decimal:
    return Order.objects.get(pk=order.pk).refundable


def test_the_send_task_run_twice_pays_once(order):
    # given a pending payout
    payout = make_payout(order)

    # when the task is delivered twice (a broker redelivery, a re-dispatch)
    first = payout_send.delay(payout.pk).get()
    second = payout_send.delay(payout.pk).get()

    # then the gateway refunded once; the second run did not even ask
    assert (first, second) == ("succeeded", "skipped")
    refund = GatewayRefund.objects.get()
    assert (refund.idempotency_key, refund.amount, refund.calls) == (
        "cancel:test",
        Decimal("59.90"),
        1,
    )
    assert refund.payment_reference == order.payment_reference
    payout = fresh(payout)
    assert payout.status == PayoutStatus.SUCCEEDED
    assert payout.gateway_reference == refund.reference
    assert Event.objects.filter(kind="payout.succeeded").count() == 1


def test_a_worker_dying_after_the_gateway_paid_does_not_pay_twice(order, monkeypatch):
    # given a worker that crashes after the gateway refunded, before it recorded the success
    payout = make_payout(order)
    now = timezone.now()
    settle = payout_services._payout_settle_succeeded

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("worker killed")

    monkeypatch.setattr(payout_services, "_payout_settle_succeeded", crash)
    with pytest.raises(RuntimeError):
        payout_services.payout_attempt(payout_id=payout.pk, now=now)
    monkeypatch.setattr(payout_services, "_payout_settle_succeeded", settle)

    # when another worker picks it up once the first one's claim has run out
    outcome = payout_services.payout_attempt(
        payout_id=payout.pk, now=now + payout_services.PAYOUT_CLAIM + timedelta(seconds=1)
    )

    # then the gateway replayed the same refund: one refund, two calls
    assert outcome == "succeeded"
    refund = GatewayRefund.objects.get()
    assert refund.calls == 2
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
    assert fresh(payout).attempts == 2


def test_a_claimed_payout_is_not_sent_by_a_second_worker(order):
    payout = make_payout(order)
    now = timezone.now()
    assert payout_services._claim_payout(payout.pk, now)
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now) == "skipped"
    assert not GatewayRefund.objects.exists()


def test_a_declined_refund_fails_with_a_reason_and_a_retry_pays_once(
    order, staff, settings, django_capture_on_commit_callbacks
):
    # given a gateway that declines
    settings.FAKE_GATEWAY_MODE = "fail"
    payout = make_payout(order)

    # when the payout is sent
    assert payout_send.delay(payout.pk).get() == "failed"

    # then it is failed with the gateway's reason, staff are told, and nothing was refunded
    payout = fresh(payout)
    assert payout.status == PayoutStatus.FAILED
    assert "card_declined" in payout.failure_reason
    assert payout.next_attempt_at is not None
    event = Event.objects.get(kind="payout.failed")
    assert event.note == payout.failure_reason
    assert event.payload["notify"] == {"staff": True}
    assert not GatewayRefund.objects.exists()
    # a failed payout still holds its reservation (it is awaiting retry; docs/rules.md, What is left
    # to refund)
    assert refundable(order) == Decimal("0.00")

    # when the gateway recovers and staff retry
    settings.FAKE_GATEWAY_MODE = "succeed"
    with django_capture_on_commit_callbacks(execute=True):
        payout_services.payout_retry(payout=payout, actor=staff)

    # then the same row and key are paid, once
    payout = fresh(payout)
    assert payout.status == PayoutStatus.SUCCEEDED
    assert payout.attempts == 2
    refund = GatewayRefund.objects.get()
    assert (refund.idempotency_key, refund.calls) == ("cancel:test", 1)
    retried = Event.objects.get(kind="payout.retried")
    assert (retried.actor_id, retried.from_state, retried.to_state) == (
        staff.pk,
        "failed",
        "pending",
    )


def test_a_failing_payment_reference_keeps_failing(db, staff, django_capture_on_commit_callbacks):
    # given an order whose payment the gateway always declines
    order = OrderFactory(payment_reference="fail-ch_0001")
    payout = make_payout(order)
    assert payout_send.delay(payout.pk).get() == "failed"

    # when staff retry
    with django_capture_on_commit_callbacks(execute=True):
        payout_services.payout_retry(payout=fresh(payout), actor=staff)

    # then it fails again, nothing is refunded, and both failures are on the trail
    assert fresh(payout).status == PayoutStatus.FAILED
    assert fresh(payout).attempts == 2
    assert not GatewayRefund.objects.exists()
    assert Event.objects.filter(kind="payout.failed").count() == 2


def test_a_timeout_after_the_refund_was_made_then_a_retry_pays_once(order, settings):
    # given a gateway that refunds but never answers
    settings.FAKE_GATEWAY_MODE = "timeout"
    payout = make_payout(order)
    now = timezone.now()

    # when the payout is attempted
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now) == "timeout"

    # then the money moved, but the payout stays pending (unknown outcome), to be asked again
    assert GatewayRefund.objects.get().calls == 1
    payout = fresh(payout)
    assert payout.status == PayoutStatus.PENDING
    assert "did not answer" in payout.failure_reason
    assert payout.claimed_until is None

    # when it is attempted again with the same key (the gateway still times out on new refunds)
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now + timedelta(minutes=1)) == (
        "succeeded"
    )

    # then the gateway answered with the refund it had made: one refund, paid once
    refund = GatewayRefund.objects.get()
    assert refund.calls == 2
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


def test_the_send_task_retries_a_timeout_by_itself(order, settings):
    settings.FAKE_GATEWAY_MODE = "timeout"
    payout = make_payout(order)

    # when the task meets a timeout, it asks Celery to run it again (with backoff, ≤ 5 min)
    with pytest.raises(Retry) as excinfo:
        payout_send.delay(payout.pk)
    assert 0 < excinfo.value.when <= 300
    assert fresh(payout).status == PayoutStatus.PENDING

    # and the retried run gets the refund the gateway had made, with the same key
    assert payout_send.delay(payout.pk).get() == "succeeded"
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
    refund = GatewayRefund.objects.get()
    assert refund.calls == 2


def test_a_pending_refund_settles_on_the_next_call(order, settings):
    # given a gateway that accepts refunds as pending
    settings.FAKE_GATEWAY_MODE = "pending"
    payout = make_payout(order)
    now = timezone.now()

    # when the payout is attempted
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now) == "pending"

    # then the refund exists but is pending, and so is the payout
    refund = GatewayRefund.objects.get()
    assert refund.status == "pending"
    assert fresh(payout).status == PayoutStatus.PENDING
    assert fresh(payout).gateway_reference == refund.reference

    # when it is asked again
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now + timedelta(minutes=1)) == (
        "succeeded"
    )

    # then the same refund settled
    refund = GatewayRefund.objects.get()
    assert (refund.status, refund.calls) == ("succeeded", 2)
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


def test_a_pending_payment_reference_settles_too(db):
    # given the marker in the payment reference instead of the setting
    order = OrderFactory(payment_reference="pending-ch_0002")
    payout = make_payout(order)
    now = timezone.now()
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now) == "pending"
    assert payout_services.payout_attempt(payout_id=payout.pk, now=now) == "succeeded"
    assert GatewayRefund.objects.get().calls == 2


def test_cancelling_a_failed_payout_releases_its_reservation(order, staff, settings):
    # given a failed payout of 20.00 on a 59.90 order
    settings.FAKE_GATEWAY_MODE = "fail"
    payout = make_payout(order, amount="20.00")
    payout_send.delay(payout.pk)
    assert refundable(order) == Decimal("39.90")

    # when staff give up on it
    payout_services.payout_cancel(payout=fresh(payout), actor=staff)

    # then it is cancelled and the amount is refundable again
    assert fresh(payout).status == PayoutStatus.CANCELLED
    assert refundable(order) == Decimal("59.90")
    event = Event.objects.get(kind="payout.cancelled")
    assert (event.actor_id, event.to_state) == (staff.pk, "cancelled")
    # and the full total can be paid by another payout
    make_payout(order, amount="59.90", key="cancel:second")
    assert refundable(order) == Decimal("0.00")


def test_only_staff_cancel_a_payout(order, buyer, settings):
    settings.FAKE_GATEWAY_MODE = "fail"
    payout = make_payout(order)
    payout_send.delay(payout.pk)
    with pytest.raises(NotAllowed):
        payout_services.payout_cancel(payout=fresh(payout), actor=buyer)
    assert fresh(payout).status == PayoutStatus.FAILED
    assert refundable(order) == Decimal("0.00")


@pytest.mark.parametrize("mode", ["succeed", "pending"])
def test_a_payout_that_did_not_fail_cannot_be_cancelled_or_retried(order, staff, settings, mode):
    settings.FAKE_GATEWAY_MODE = mode
    payout = make_payout(order)
    if mode == "succeed":
        payout_send.delay(payout.pk)
    with pytest.raises(InvalidTransition):
        payout_services.payout_cancel(payout=fresh(payout), actor=staff)
    with pytest.raises(InvalidTransition):
        payout_services.payout_retry(payout=fresh(payout), actor=staff)
    assert refundable(order) == Decimal("0.00")


def test_redispatch_retries_failed_payouts_after_their_backoff(
    order, settings, django_capture_on_commit_callbacks
):
    # given a payout that failed, and a gateway that has recovered
    settings.FAKE_GATEWAY_MODE = "fail"
    payout = make_payout(order)
    payout_send.delay(payout.pk)
    settings.FAKE_GATEWAY_MODE = "succeed"
    backoff_ends = fresh(payout).next_attempt_at

    # then nothing is retried before its backoff, and it is paid once after it
    assert payout_services.payouts_redispatch(now=backoff_ends - timedelta(seconds=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert payout_services.payouts_redispatch(now=backoff_ends) == 1
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
    assert GatewayRefund.objects.get().calls == 1
    assert not Event.objects.filter(kind="payout.retried").exists()  # the system, no staff event
