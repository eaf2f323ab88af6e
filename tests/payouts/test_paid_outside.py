"""Payouts the gateway cannot pay wait for staff, who pay outside the portal and mark them paid
(docs/rules.md, Payouts; Payout states). Driven with the Stripe gateway pointed at the local
server, whose request log proves what was (not) sent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from kernel.errors import InvalidTransition, NotAllowed, ValidationFailed
from notifications.tasks import notifications_dispatch
from orders.models import Event, Order
from payouts import gateway
from payouts import services as payout_services
from payouts.models import Payout, PayoutStatus
from payouts.sweeps import payouts_overdue_alert
from refunds import services as refund_services
from refunds.models import State
from tests.orders.factories import OrderFactory
from tests.payouts.helpers import attempt, make_payout, stripe_order
from tests.refunds.factories import file_refund, reload

NOT_STRIPES = ["paypal", "wallet", "bank_transfer"]


def order_paid_by(method: str) -> Order:
    return OrderFactory(
        payment_method=method, payment_reference="PAYID-7K3F9Q2D", card_brand="", card_last4=""
    )


def staff_alerts() -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if "ops@refundportal.test" in m.to]


def approved_case(order: Order, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """A refund request the seller accepted without a return: its payout is created, and what
    its creation queues runs (as it would on commit)."""
    case = file_refund(order)
    with django_capture_on_commit_callbacks(execute=True):
        refund_services.refund_accept(case=case, actor=order.shop.owner)
    return reload(case)


def mark(payout: Payout, actor, reference="PAYPAL-5TY05013RG002845M", note="Paid in PayPal."):  # type: ignore[no-untyped-def]
    return payout_services.payout_mark_paid_outside(
        payout=payout, actor=actor, reference=reference, note=note
    )


# --- the gateway says what it pays --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "stripe", "fake"),
    [
        ("card", True, True),
        ("paypal", False, True),
        ("wallet", False, True),
        ("bank_transfer", False, True),
    ],
)
def test_stripe_pays_card_payments_only_and_the_fake_pays_all(method, stripe, fake):
    assert gateway.StripeGateway().pays(method) is stripe
    assert gateway.FakeGateway().pays(method) is fake


# --- waiting for staff ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", NOT_STRIPES)
def test_a_payout_stripe_cannot_pay_waits_for_staff_without_a_request(
    db, stripe_server, method, django_capture_on_commit_callbacks
):
    # given an order paid outside Stripe, with a refund the seller accepts
    order = order_paid_by(method)

    # when the refund is approved and its payout created
    case = approved_case(order, django_capture_on_commit_callbacks)

    # then the payout waits for staff at once, and Stripe was never asked
    payout = Payout.objects.get(order=order)
    assert payout.status == PayoutStatus.AWAITING_STAFF
    assert "pay it outside the portal" in payout.failure_reason
    assert stripe_server.requests == []
    assert case.state == State.REFUND_PENDING
    # and the money stays reserved for it
    assert Order.objects.get(pk=order.pk).refundable == Decimal("0")


def test_staff_are_emailed_once_and_the_re_dispatch_never_picks_it_up(
    db, stripe_server, django_capture_on_commit_callbacks
):
    # given a PayPal payout waiting for staff, its alert delivered
    order = order_paid_by("paypal")
    approved_case(order, django_capture_on_commit_callbacks)
    payout = Payout.objects.get(order=order)
    notifications_dispatch()
    [alert] = staff_alerts()
    assert "Pay by hand" in alert.subject and order.number in alert.subject
    assert "PayPal" in alert.body
    assert Event.objects.filter(kind="payout.awaiting_staff").count() == 1

    # when the re-dispatch and the send task run, days later
    later = timezone.now() + timedelta(days=3)
    assert payout_services.payouts_due(now=later) == []
    assert payout_services.payouts_redispatch(now=later) == 0
    outcome, payout = attempt(payout)
    notifications_dispatch()

    # then nothing was sent, nothing changed, and staff got no second alert
    assert outcome == "skipped"
    assert payout.status == PayoutStatus.AWAITING_STAFF
    assert stripe_server.requests == []
    assert len(staff_alerts()) == 1


def test_a_pending_payout_from_before_the_switch_to_stripe_waits_for_staff(
    db, stripe_server, settings
):
    # given a PayPal payout created while the fake gateway (which pays every method) was in use
    settings.PAYMENT_GATEWAY = "fake"
    payout = make_payout(order_paid_by("paypal"))
    assert payout.status == PayoutStatus.PENDING

    # when it is sent after the switch to Stripe
    settings.PAYMENT_GATEWAY = "stripe"
    outcome, payout = attempt(payout)

    # then it waits for staff, without a request, and staff are told
    assert outcome == "awaiting-staff"
    assert payout.status == PayoutStatus.AWAITING_STAFF
    assert payout.claimed_until is None
    assert stripe_server.requests == []
    assert Event.objects.filter(kind="payout.awaiting_staff").count() == 1


def test_a_payout_waiting_for_staff_counts_as_overdue_like_any_unpaid_one(
    db, stripe_server, django_capture_on_commit_callbacks
):
    # given a PayPal payout waiting for staff
    order = order_paid_by("paypal")
    approved_case(order, django_capture_on_commit_callbacks)
    payout = Payout.objects.get(order=order)

    # when its 48 hours pass unpaid
    hard = payout.created_at + timedelta(hours=48)

    # then the overdue sweep alerts once, at the deadline and not before
    assert payouts_overdue_alert(now=hard - timedelta(seconds=1)) == 0
    assert payouts_overdue_alert(now=hard) == 1
    assert payouts_overdue_alert(now=hard + timedelta(hours=1)) == 0
    event = Event.objects.get(kind="payout.overdue")
    assert event.payload["status"] == PayoutStatus.AWAITING_STAFF


# --- marking it paid ------------------------------------------------------------------------------


def test_staff_mark_it_paid_outside_and_the_case_settles(
    db, stripe_server, staff, django_capture_on_commit_callbacks
):
    # given a PayPal refund waiting for staff
    order = order_paid_by("paypal")
    case = approved_case(order, django_capture_on_commit_callbacks)
    payout = Payout.objects.get(order=order)

    # when staff paid it in PayPal and mark it so
    paid = mark(payout, staff, note="Refunded in PayPal.\nBuyer confirmed by email.")

    # then the payout succeeded and the case settled, without a word to Stripe
    assert paid.status == PayoutStatus.SUCCEEDED
    assert paid.succeeded_at is not None
    assert (paid.paid_outside_reference, paid.paid_outside_by) == (
        "PAYPAL-5TY05013RG002845M",
        staff,
    )
    assert paid.paid_outside_note == "Refunded in PayPal.\nBuyer confirmed by email."
    assert reload(case).state == State.REFUNDED
    assert stripe_server.requests == []
    # and the audit trail says who, where the money went and why
    event = Event.objects.get(kind="payout.paid_outside")
    assert event.actor == staff
    assert (event.from_state, event.to_state) == ("awaiting_staff", "succeeded")
    assert event.payload["reference"] == "PAYPAL-5TY05013RG002845M"
    assert event.payload["paid_outside_note"] == "Refunded in PayPal.\nBuyer confirmed by email."
    assert event.note == "Refunded in PayPal.\nBuyer confirmed by email."
    # the desk's note is not on the case's timeline; the parties hear the money went back
    assert event.case_id is None
    succeeded = Event.objects.get(kind="payout.succeeded")
    assert succeeded.case_id == case.public_id
    assert succeeded.actor == staff


def test_a_payout_stripe_refused_can_be_marked_paid_outside(db, stripe_server, staff):
    # given a card payout Stripe definitely refused
    stripe_server.answer("400:charge_already_refunded")
    outcome, payout = attempt(make_payout(stripe_order()))
    assert outcome == "failed"

    # when staff pay it another way and mark it
    paid = mark(payout, staff, reference="BANK-TRF-2026-0042", note="Sent by bank transfer.")

    # then it succeeded, and Stripe was asked only the once
    assert paid.status == PayoutStatus.SUCCEEDED
    assert not paid.failure_definite and paid.failure_reason == ""
    assert len(stripe_server.requests) == 1
    assert Event.objects.get(kind="payout.paid_outside").from_state == "failed"
    # and a staff retry can no longer send it
    with pytest.raises(InvalidTransition):
        payout_services.payout_retry(payout=paid, actor=staff)


def test_a_pending_card_payout_cannot_be_marked_paid(db, stripe_server, staff):
    # given a card payout Stripe may still pay (it answered pending)
    stripe_server.answer("pending")
    _, payout = attempt(make_payout(stripe_order()))
    assert payout.status == PayoutStatus.PENDING

    # when staff try to mark it paid outside, then it is refused: it could be paid twice
    with pytest.raises(InvalidTransition, match="only one waiting for staff or one that failed"):
        mark(payout, staff)
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.PENDING
    assert not Event.objects.filter(kind="payout.paid_outside").exists()


def test_a_succeeded_payout_cannot_be_marked_paid_again(db, stripe_server, staff):
    _, payout = attempt(make_payout(stripe_order()))
    assert payout.status == PayoutStatus.SUCCEEDED
    with pytest.raises(InvalidTransition):
        mark(payout, staff)
    assert Payout.objects.get(pk=payout.pk).paid_outside_reference == ""


@pytest.mark.parametrize(
    ("reference", "note", "field"),
    [
        ("", "Paid.", "reference"),
        ("   ", "Paid.", "reference"),
        ("PAYID-1\nPAYID-2", "Paid.", "reference"),
        ("PAYID-1\n", "Paid.", "reference"),
        ("PAYID-1\t", "Paid.", "reference"),
        ("PAYID-1", "", "note"),
        ("PAYID-1", "Paid\x00.", "note"),
    ],
)
def test_a_reference_and_a_note_are_required_as_text_rules_say(
    db, stripe_server, staff, reference, note, field
):
    payout = make_payout(order_paid_by("paypal"))
    assert payout.status == PayoutStatus.AWAITING_STAFF

    with pytest.raises(ValidationFailed) as refused:
        mark(payout, staff, reference=reference, note=note)

    assert field in (refused.value.fields or {})
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.AWAITING_STAFF


def test_a_multi_line_note_keeps_its_lines(db, stripe_server, staff):
    payout = make_payout(order_paid_by("bank_transfer"))
    paid = mark(payout, staff, reference="SEPA 2026/11/42", note="Line one.\r\nLine two.")
    assert paid.paid_outside_note == "Line one.\r\nLine two."


def test_a_non_staff_user_cannot_mark_a_payout_paid(db, stripe_server, buyer):
    payout = make_payout(order_paid_by("paypal"))
    with pytest.raises(NotAllowed):
        mark(payout, buyer)
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.AWAITING_STAFF


def test_staff_can_cancel_a_payout_waiting_for_them(db, stripe_server, staff):
    # given a PayPal payout the marketplace decides not to pay here after all
    order = order_paid_by("paypal")
    payout = make_payout(order)

    # when staff cancel it, then its reservation is released
    payout_services.payout_cancel(payout=payout, actor=staff)
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.CANCELLED
    assert Order.objects.get(pk=order.pk).refundable == order.total
    event = Event.objects.get(kind="payout.cancelled")
    assert event.from_state == "awaiting_staff"
