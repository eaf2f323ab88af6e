"""The reconciliation of lost webhooks and of forgotten keys (docs/rules.md, Payouts → Stripe):
a pending refund is read back by the periodic re-dispatch 30 minutes after it was last heard of,
and an outcome unknown for a day is looked for among the payment's refunds before any new POST."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import time_machine
from django.test import Client
from django.utils import timezone

from payouts.gateway import StripeGateway
from payouts.models import Payout, PayoutStatus
from payouts.tasks import payout_send, payouts_redispatch
from tests.payouts.helpers import attempt, make_payout, stripe_order
from tests.payouts.stripe_server import StripeServer, signature_header

WEBHOOK_SECRET = "whsec_" + "local0webhook0secret"


def fresh(payout: Payout) -> Payout:
    return Payout.objects.get(pk=payout.pk)


def reads(stripe: StripeServer) -> list[dict]:
    return [r for r in stripe.requests if "retrieve" in r]


def posts(stripe: StripeServer) -> list[dict]:
    return [r for r in stripe.requests if "idempotency_key" in r]


# --- a lost webhook -------------------------------------------------------------------------------


def test_a_pending_refund_is_read_back_30_minutes_after_it_was_last_heard_of(db, stripe_server):
    # given a refund Stripe made pending, which then succeeded without a webhook reaching us
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        stripe_server.answer("pending")
        outcome, payout = attempt(make_payout(stripe_order()))
    assert outcome == "pending"
    stripe_server.settle(payout.gateway_reference, "succeeded")

    # when the periodic re-dispatch runs at 29:59, nothing is asked
    with time_machine.travel(start + timedelta(minutes=29, seconds=59), tick=False):
        assert payouts_redispatch.apply().get() == 0
    assert reads(stripe_server) == []
    assert fresh(payout).status == PayoutStatus.PENDING

    # and at 30:01 the refund is read back (GET, no second POST) and the payout settles
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        assert payouts_redispatch.apply().get() == 1
    assert reads(stripe_server) == [{"retrieve": payout.gateway_reference}]
    assert len(posts(stripe_server)) == 1
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
    assert len(stripe_server.ledger) == 1


def test_the_send_task_leaves_a_pending_refund_to_the_webhook(db, stripe_server):
    # the task does not poll Stripe: a pending refund waits for its webhook
    stripe_server.answer("pending")
    payout = make_payout(stripe_order())
    assert payout_send.delay(payout.pk).get() == "pending"
    assert reads(stripe_server) == []


def test_a_pending_webhook_postpones_the_read_back(db, stripe_server, settings):
    # given a pending refund, and 20 minutes later Stripe's webhook saying it is still pending
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        stripe_server.answer("pending")
        _, payout = attempt(make_payout(stripe_order()))
    refund_id = payout.gateway_reference
    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        event = stripe_server.event("refund.updated", stripe_server.refund_object(refund_id))
        payload = json.dumps(event)
        header = signature_header(payload, WEBHOOK_SECRET, int(time.time()))
        Client().post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=header,
        )

    # then the read-back waits 30 minutes from that webhook, not from the first answer
    with time_machine.travel(start + timedelta(minutes=49, seconds=59), tick=False):
        assert payouts_redispatch.apply().get() == 0
    with time_machine.travel(start + timedelta(minutes=50, seconds=1), tick=False):
        assert payouts_redispatch.apply().get() == 1
    assert reads(stripe_server) == [{"retrieve": refund_id}]


# --- Stripe forgets a key after 24 hours ----------------------------------------------------------


def unknown_for(
    stripe: StripeServer,
    behaviour: object,
    hours: float,
    *,
    forgotten: bool = True,
    key: str = "refund:case-1",
    reference: str = "pi_3Ab",
) -> tuple[Payout, object]:
    """A payout whose first call had no usable answer, `hours` ago; Stripe forgot the key."""
    start = timezone.now() - timedelta(hours=hours)
    with time_machine.travel(start, tick=False):
        stripe.answer(behaviour)
        outcome, payout = attempt(make_payout(stripe_order(reference=reference), key=key))
    assert (outcome, payout.gateway_reference) == ("timeout", "")
    if forgotten:
        stripe.forget_keys()
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=None)
    return payout, start


def test_after_23_hours_a_refund_made_for_the_payout_is_adopted_not_made_again(db, stripe_server):
    # given a call that made the refund but broke before the answer, 23 h 1 min ago, and
    # Stripe has since forgotten the key
    payout, _ = unknown_for(stripe_server, "drop", hours=23 + 1 / 60)
    [refund] = stripe_server.ledger

    # when the payout is attempted again
    outcome, payout = attempt(payout)

    # then the payment's refunds were listed and ours adopted: nothing posted, paid once
    assert outcome == "succeeded"
    assert payout.gateway_reference == refund.id
    assert stripe_server.requests[-1] == {"list": {"payment_intent": "pi_3Ab", "limit": "100"}}
    assert len(posts(stripe_server)) == 1
    assert len(stripe_server.ledger) == 1


def test_after_23_hours_with_no_refund_made_one_is_posted(db, stripe_server):
    # given calls that never reached Stripe (503) for a day
    payout, _ = unknown_for(stripe_server, 503, hours=23.5)

    # when it is attempted again, the list is empty, so the refund is asked for
    outcome, payout = attempt(payout)
    assert outcome == "succeeded"
    assert [next(iter(r)) for r in stripe_server.requests] == [
        "idempotency_key",
        "list",
        "idempotency_key",
    ]
    assert len(stripe_server.ledger) == 1


def test_after_23_hours_another_refund_of_the_payment_is_not_adopted(db, stripe_server):
    # given another refund of the same payment (a dashboard refund, no metadata of ours)
    payout, _ = unknown_for(stripe_server, 503, hours=24)
    stripe_server.answer("succeeded")
    StripeGateway().refund("pi_3Ab", payout.amount, "USD", "dashboard-1")
    stripe_server.forget_keys()

    # when the payout is attempted, it posts its own refund
    outcome, payout = attempt(payout)
    assert outcome == "succeeded"
    assert len(stripe_server.ledger) == 2
    assert payout.gateway_reference == stripe_server.ledger[1].id


def test_the_list_is_asked_from_23_hours_after_the_key_was_first_sent(db, stripe_server):
    # given two calls that broke before their answers, 22:59 and 23:01 ago
    trusted, _ = unknown_for(stripe_server, "drop", hours=22 + 59 / 60, forgotten=False)
    doubted, _ = unknown_for(
        stripe_server, "drop", 23 + 1 / 60, forgotten=False, key="refund:case-2", reference="pi_2"
    )
    asked = len(stripe_server.requests)

    # when both are attempted again
    outcomes = [attempt(trusted)[0], attempt(doubted)[0]]

    # then the younger key is trusted (a POST, answered with its replay), and for the older
    # one the payment's refunds are listed first
    assert outcomes == ["succeeded", "succeeded"]
    assert [next(iter(r)) for r in stripe_server.requests[asked:]] == ["idempotency_key", "list"]


def test_when_the_list_fails_nothing_is_posted(db, stripe_server):
    # given a day of unknown outcome, and Stripe failing the list
    payout, _ = unknown_for(stripe_server, "drop", hours=24)
    stripe_server.valid_keys.clear()

    # when attempted, the payout waits (the refused key) and nothing was posted again
    outcome, payout = attempt(payout)
    assert outcome == "unauthorized"
    assert "list" in stripe_server.requests[-1]
    assert len(posts(stripe_server)) == 1
    assert len(stripe_server.ledger) == 1
