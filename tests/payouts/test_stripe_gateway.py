"""The Stripe gateway (docs/rules.md, Payouts), driven through the real `stripe` client against a
local server that speaks Stripe's wire format; "paid once" is judged on that server's ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.utils import timezone

from notifications.tasks import notifications_dispatch
from orders.models import Event
from payouts import gateway
from payouts import services as payout_services
from payouts.models import Payout, PayoutStatus
from payouts.tasks import payout_send
from tests.payouts.helpers import STRIPE_KEY, attempt, make_payout, stripe_order

# --- the request -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "field"), [("pi_3Ab", "payment_intent"), ("ch_3Ab", "charge")]
)
def test_a_payout_posts_a_refund_with_its_key_amount_and_metadata(
    db, stripe_server, reference, field
):
    # given a pending payout of a card order paid through Stripe
    order = stripe_order(reference=reference)
    payout = make_payout(order)

    # when it is sent
    outcome, payout = attempt(payout)

    # then Stripe got one refund of the payment, with the payout's key and metadata
    assert outcome == "succeeded"
    [refund] = stripe_server.ledger
    assert getattr(refund, field) == reference
    assert refund.amount == 5990
    assert refund.idempotency_key == "refund:case-1"
    assert refund.metadata == {"payout": str(payout.public_id), "order_number": order.number}
    assert payout.status == PayoutStatus.SUCCEEDED
    assert payout.gateway_reference == refund.id


@pytest.mark.parametrize(
    ("currency", "price", "sent"),
    [
        ("USD", "59.90", 5990),
        ("JPY", "5990", 5990),  # zero-decimal
        ("KRW", "15000", 15000),  # zero-decimal
        ("KWD", "5.120", 5120),  # three-decimal
        ("KWD", "5.125", 5120),  # the last digit must be 0: never more than approved
        ("BHD", "12.345", 12340),
        ("HUF", "1500", 150000),  # two-decimal in Stripe's API
        ("TWD", "300.50", 30050),
        ("ISK", "4000", 400000),  # whole krónur, counted in hundredths
        ("UGX", "5000", 500000),  # the same, for backwards compatibility
    ],
)
def test_amounts_follow_stripes_currency_rules(db, stripe_server, currency, price, sent):
    order = stripe_order(currency=currency, price=price)
    attempt(make_payout(order))
    assert [r.amount for r in stripe_server.ledger] == [sent]


# --- the outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["pending", "requires_action"])
def test_a_pending_refund_keeps_the_payout_pending(db, stripe_server, behaviour):
    # given Stripe answers with a refund not yet settled
    stripe_server.answer(behaviour)
    payout = make_payout(stripe_order())

    # when it is sent
    outcome, payout = attempt(payout)

    # then the payout is pending, with Stripe's refund id, until it settles
    assert outcome == "pending"
    assert payout.status == PayoutStatus.PENDING
    assert payout.gateway_reference == stripe_server.ledger[0].id


@pytest.mark.parametrize(("settled", "outcome"), [("succeeded", "succeeded"), ("failed", "failed")])
def test_a_pending_refund_is_read_back_never_asked_for_again(db, stripe_server, settled, outcome):
    # given a refund Stripe made pending, which it settles later
    stripe_server.answer("pending")
    payout = make_payout(stripe_order())
    attempt(payout)
    [refund] = stripe_server.ledger
    stripe_server.settle(refund.id, settled, "lost_or_stolen_card" if settled == "failed" else None)

    # when the payout is attempted again (the re-dispatch)
    result, payout = attempt(payout)

    # then the refund was read back by its id: no second POST, which Stripe would answer with the
    # replayed "pending" for a day and, once it forgot the key, with a second refund
    assert result == outcome
    assert stripe_server.requests[-1] == {"retrieve": refund.id}
    assert [r for r in stripe_server.requests if "idempotency_key" in r] == [
        stripe_server.requests[0]
    ]
    assert len(stripe_server.ledger) == 1
    assert payout.status == (PayoutStatus.SUCCEEDED if settled == "succeeded" else "failed")


def test_a_staff_retry_after_a_pending_refund_failed_asks_for_a_new_one(db, stripe_server, staff):
    # given a pending refund that then failed at Stripe
    stripe_server.answer("pending")
    payout = make_payout(stripe_order())
    attempt(payout)
    stripe_server.settle(stripe_server.ledger[0].id, "failed", "expired_or_canceled_card")
    attempt(payout)

    # when staff retry it
    payout_services.payout_retry(payout=Payout.objects.get(pk=payout.pk), actor=staff)
    outcome, payout = attempt(payout)

    # then a new refund was created under a new key, not the failed one read back again
    assert outcome == "succeeded"
    assert [r.idempotency_key for r in stripe_server.ledger] == ["refund:case-1", "refund:case-1:1"]
    assert payout.gateway_reference == stripe_server.ledger[1].id


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("failed:expired_or_canceled_card", "expired or was cancelled"),
        ("failed:lost_or_stolen_card", "lost or stolen"),
        ("canceled", "canceled"),
        (402, "card_declined"),
        ("400:charge_already_refunded", "charge_already_refunded"),
        ("400:amount_too_large", "amount_too_large"),
    ],
)
def test_a_definite_failure_fails_with_a_reason_and_is_not_retried(
    db, stripe_server, behaviour, words
):
    # given Stripe gives a definite no
    stripe_server.answer(behaviour)
    payout = make_payout(stripe_order())

    # when it is sent
    outcome, payout = attempt(payout)

    # then the payout failed, with the reason in words for staff
    assert outcome == "failed"
    assert payout.status == PayoutStatus.FAILED
    assert words in payout.failure_reason
    assert payout.failure_definite
    # and nothing retries it automatically: the re-dispatch never finds it
    later = timezone.now() + timedelta(days=2)
    assert payout_services.payouts_due(now=later) == []
    assert payout_services.payouts_redispatch(now=later) == 0
    assert len(stripe_server.requests) == 1
    event = Event.objects.get(kind="payout.failed")
    assert event.payload["definite"] is True


def test_the_send_task_does_not_retry_a_definite_failure(db, stripe_server):
    stripe_server.answer(402)
    payout = make_payout(stripe_order())
    assert payout_send.delay(payout.pk).get() == "failed"
    assert len(stripe_server.requests) == 1


def test_a_staff_retry_after_a_definite_failure_sends_a_new_key(db, stripe_server, staff):
    # given a payout Stripe refused definitely
    stripe_server.answer("400:amount_too_large")
    payout = make_payout(stripe_order())
    attempt(payout)

    # when staff retry it, and again after a second refusal
    payout_services.payout_retry(payout=Payout.objects.get(pk=payout.pk), actor=staff)
    outcome, payout = attempt(payout)
    assert outcome == "succeeded"

    # then the retry went out under a new key (the old one would replay the refusal)
    keys = [r["idempotency_key"] for r in stripe_server.requests]
    assert keys == ["refund:case-1", "refund:case-1:1"]
    assert [r.idempotency_key for r in stripe_server.ledger] == ["refund:case-1:1"]


def test_a_staff_retry_with_the_same_key_would_replay_the_refusal(db, stripe_server):
    # the reason for the new key: Stripe replays a key's first answer
    stripe_server.answer(402)
    payout = make_payout(stripe_order())
    attempt(payout)
    with pytest.raises(gateway.GatewayDeclined):
        gateway.StripeGateway().refund(
            "pi_3Ab", Decimal("59.90"), "USD", "refund:case-1", metadata=_metadata(payout)
        )
    assert stripe_server.ledger == []


def _metadata(payout: Payout) -> dict[str, str]:
    return {"payout": str(payout.public_id), "order_number": payout.order.number}


@pytest.mark.parametrize("behaviour", [429, 500, 503, "drop"])
def test_an_unknown_outcome_is_retried_with_the_same_key_and_pays_once(
    db, stripe_server, behaviour
):
    # given Stripe does not answer usefully the first time ("drop": it refunded, then the
    # connection broke before the answer)
    stripe_server.answer(behaviour)
    payout = make_payout(stripe_order())

    # when it is sent, and then retried
    first, payout = attempt(payout)
    assert (first, payout.status) == ("timeout", PayoutStatus.PENDING)
    assert not payout.failure_definite
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=None)
    second, payout = attempt(payout)

    # then both asked with the same key, and Stripe refunded exactly once
    assert second == "succeeded"
    assert [r["idempotency_key"] for r in stripe_server.requests] == ["refund:case-1"] * 2
    assert len(stripe_server.ledger) == 1
    assert payout.gateway_reference == stripe_server.ledger[0].id


def test_a_timeout_after_the_refund_was_made_then_a_retry_pays_once(db, stripe_server, monkeypatch):
    # given Stripe makes the refund but answers after the client gave up
    monkeypatch.setattr(gateway, "STRIPE_TIMEOUT_SECONDS", 0.3)
    gateway._stripe_client.cache_clear()
    stripe_server.answer("hang:1.5")
    payout = make_payout(stripe_order())
    try:
        first, payout = attempt(payout)
    finally:
        gateway._stripe_client.cache_clear()
    assert first == "timeout"

    # when the task retries
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=None)
    second, payout = attempt(payout)

    # then the server's ledger has one refund
    assert second == "succeeded"
    assert len(stripe_server.ledger) == 1


def test_the_send_task_retries_an_unknown_outcome_by_itself(db, stripe_server):
    stripe_server.answer(503)
    payout = make_payout(stripe_order())
    with pytest.raises(Retry):
        payout_send.delay(payout.pk).get()


def test_a_refused_key_alerts_staff_and_the_payout_waits(db, stripe_server, settings, staff):
    # given a key Stripe refuses
    settings.STRIPE_SECRET_KEY = "sk_test_" + "revoked" * 4
    payout = make_payout(stripe_order())

    # when the payout is sent by its task
    outcome = payout_send.delay(payout.pk).get()

    # then it is not retried, waits pending, and staff are told by email
    assert outcome == "unauthorized"
    payout = Payout.objects.get(pk=payout.pk)
    assert payout.status == PayoutStatus.PENDING
    assert "STRIPE_SECRET_KEY" in payout.failure_reason
    assert len(stripe_server.requests) == 1
    assert stripe_server.ledger == []
    assert payout_services.payouts_due(now=timezone.now()) == []
    Event.objects.get(kind="payout.key_refused")
    notifications_dispatch()
    assert any("API key" in m.subject and "ops@refundportal.test" in m.to for m in mail.outbox)

    # and once the key is fixed, the re-dispatch sends it after the wait
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    later = timezone.now() + payout_services.PAYOUT_KEY_WAIT
    assert payout_services.payouts_due(now=later) == [payout.pk]
    outcome, payout = attempt(payout)
    assert outcome == "succeeded"
    assert len(stripe_server.ledger) == 1


def test_a_refused_key_alerts_staff_once_an_hour_not_once_a_payout(db, stripe_server, settings):
    # given a key Stripe refuses, and three payouts waiting to be sent
    settings.STRIPE_SECRET_KEY = "sk_test_" + "revoked" * 4
    payouts = [make_payout(stripe_order(), key=f"refund:case-{n}") for n in range(3)]
    start = timezone.now()

    # when each is tried within the hour
    for n, payout in enumerate(payouts):
        payout_services.payout_attempt(payout_id=payout.pk, now=start + timedelta(minutes=n))

    # then each is in the audit trail, and staff got one email
    assert Event.objects.filter(kind="payout.key_refused").count() == 3
    notifications_dispatch()
    alerts = [m for m in mail.outbox if "API key" in m.subject]
    assert len({m.subject for m in alerts}) == 1
    first = len(alerts)

    # and when the key is still refused after the hour, staff are told again
    later = start + payout_services.PAYOUT_KEY_WAIT + timedelta(minutes=1)
    payout_services.payout_attempt(payout_id=payouts[0].pk, now=later)
    notifications_dispatch()
    assert len([m for m in mail.outbox if "API key" in m.subject]) == 2 * first
