"""Chargebacks arriving as Stripe sends them (docs/rules.md, Chargebacks): `charge.dispute.*`
events, signed, through `POST /webhooks/stripe/` and the real `stripe` client's verification,
"paid once" judged on the local Stripe server's ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kernel.errors import InvalidTransition
from payouts import services as payout_services
from payouts.models import Chargeback, ChargebackStatus, Payout, PayoutStatus, StripeEvent
from refunds.models import ClosedReason, State
from tests.payouts.helpers import (
    attempt,
    deliver,
    make_payout,
    paid_order,
    pending_refund_case,
    stripe_dispute,
    stripe_order,
)
from tests.payouts.stripe_server import StripeServer


def test_a_dispute_created_event_holds_the_payout_and_its_redelivery_does_nothing(db, stripe):
    # given a payout not yet sent
    order = stripe_order()
    payout = make_payout(order)
    event = stripe.event("charge.dispute.created", stripe_dispute(order))

    # when Stripe delivers the chargeback, twice
    first, again = deliver(event), deliver(event)

    # then it is held once: one chargeback, nothing sent to Stripe
    assert (first.status_code, first.json()["outcome"]) == (200, "chargeback-open")
    assert again.json()["outcome"] == "duplicate"
    assert Chargeback.objects.get().status == ChargebackStatus.OPEN
    assert StripeEvent.objects.count() == 1
    outcome, payout = attempt(payout)
    assert outcome == "held" and payout.status == PayoutStatus.PENDING
    assert stripe.requests == []


def test_a_lost_chargeback_by_webhook_counts_as_refunded_and_closes_the_case(
    buyer, seller, stripe: StripeServer
):
    # given a refund case whose payout the chargeback holds
    order = paid_order(buyer, seller)
    case = pending_refund_case(order)
    dispute = stripe_dispute(order)
    deliver(stripe.event("charge.dispute.created", dispute))

    # when the bank decides for the buyer
    answer = deliver(stripe.event("charge.dispute.closed", {**dispute, "status": "lost"}))

    # then the money counts as refunded, the case closes, and Stripe was never asked to refund
    assert answer.json()["outcome"] == "chargeback-lost"
    order.refresh_from_db()
    assert (order.charged_back, order.refundable) == (Decimal("59.90"), Decimal("0"))
    case.refresh_from_db()
    assert (case.state, case.closed_reason) == (State.CLOSED, ClosedReason.CHARGEBACK)
    assert Payout.objects.get(pk=case.payout_id).status == PayoutStatus.CANCELLED
    assert stripe.ledger == []


def test_out_of_order_a_won_close_before_the_create_pays_once(db, stripe):
    # given a payout not yet sent, and Stripe's two events delivered in the wrong order
    order = stripe_order()
    payout = make_payout(order)
    dispute = stripe_dispute(order)
    created = stripe.event("charge.dispute.created", dispute)
    closed = stripe.event("charge.dispute.closed", {**dispute, "status": "won"})

    # when the close arrives first, then the late create
    assert deliver(closed).json()["outcome"] == "chargeback-won"
    deliver(created)

    # then the chargeback stays won, the payout is not held again and is paid exactly once
    assert Chargeback.objects.get().status == ChargebackStatus.WON
    assert Payout.objects.get(pk=payout.pk).held_at is None
    outcome, payout = attempt(payout)
    assert (outcome, payout.status) == ("succeeded", PayoutStatus.SUCCEEDED)
    assert len(stripe.ledger) == 1


def test_a_refused_payout_cannot_be_marked_paid_by_hand_while_the_chargeback_is_open(
    db, stripe, staff
):
    # given a card payout Stripe refused, which staff would pay another way
    order = stripe_order()
    stripe.answer("400:charge_already_refunded")
    _, payout = attempt(make_payout(order))
    assert payout.status == PayoutStatus.FAILED

    # when the buyer's bank opens a chargeback
    deliver(stripe.event("charge.dispute.created", stripe_dispute(order)))

    # then marking it paid outside the portal is refused: the bank may pay the buyer itself
    payout.refresh_from_db()
    refusal = payout_services.payout_mark_paid_outside_refusal(payout=payout, actor=staff)
    assert isinstance(refusal, InvalidTransition)
    assert "chargeback" in refusal.message
    with pytest.raises(InvalidTransition):
        payout_services.payout_mark_paid_outside(
            payout=payout, actor=staff, reference="PP-1", note="paid by PayPal"
        )
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.FAILED

    # and once the marketplace wins, staff may
    deliver(stripe.event("charge.dispute.closed", {**stripe_dispute(order), "status": "won"}))
    payout.refresh_from_db()
    assert payout_services.payout_mark_paid_outside_refusal(payout=payout, actor=staff) is None
