"""Stripe's webhooks in (docs/rules.md, Payouts → Stripe): signed events from the local Stripe
server's builder, verified by the real `stripe` client behind `POST /webhooks/stripe/`."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from notifications.tasks import notifications_dispatch
from orders.models import Event
from payouts import services as payout_services
from payouts import webhooks
from payouts.models import Payout, PayoutStatus, StripeEvent
from refunds import services as refund_services
from refunds.models import RefundCase, State
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory
from tests.payouts.helpers import URL, WEBHOOK_SECRET, attempt, deliver, make_payout, stripe_order
from tests.payouts.stripe_server import LedgerRefund, StripeServer, signature_header
from tests.refunds.factories import file_refund

# The events that carry a Refund object (the other two carry a Dispute: test_chargebacks.py).
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")


def pending_payout(stripe: StripeServer) -> tuple[Payout, str]:
    """A payout whose refund Stripe holds pending: the payout knows the refund id."""
    stripe.answer("pending")
    outcome, payout = attempt(make_payout(stripe_order()))
    assert outcome == "pending"
    return payout, payout.gateway_reference


def refund_event(stripe: StripeServer, type: str, refund_id: str, **changes: Any) -> dict:
    return stripe.event(type, {**stripe.refund_object(refund_id), **changes})


def fresh(payout: Payout) -> Payout:
    return Payout.objects.get(pk=payout.pk)


# --- the signature -------------------------------------------------------------------------------


def test_a_signed_event_is_answered_and_recorded(db, stripe):
    # given a pending refund, and Stripe's event saying it succeeded
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")

    # when Stripe posts it
    response = deliver(event)

    # then it is answered 200 and recorded with what it did
    assert response.status_code == 200
    assert response.json() == {"received": True, "outcome": "succeeded"}
    record = StripeEvent.objects.get()
    assert (record.event_id, record.type, record.object_id, record.outcome) == (
        event["id"],
        "refund.updated",
        refund_id,
        "succeeded",
    )
    assert int(record.created.timestamp()) == event["created"]
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("missing", "no_signature"),
        ("other secret", "bad_signature"),
        ("garbled", "bad_signature"),
        ("body changed", "bad_signature"),
    ],
)
def test_an_unverified_event_is_refused_and_changes_nothing(db, stripe, caplog, how, why):
    # given a pending refund, and an event saying it succeeded that fails verification
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")
    payload = json.dumps(event)
    header = signature_header(payload, WEBHOOK_SECRET, int(time.time()))
    headers = {
        "missing": {},
        "other secret": {
            "HTTP_STRIPE_SIGNATURE": signature_header(payload, "whsec_other", int(time.time()))
        },
        "garbled": {"HTTP_STRIPE_SIGNATURE": "t=,v1"},
        "body changed": {"HTTP_STRIPE_SIGNATURE": header},
    }[how]
    if how == "body changed":
        payload = payload.replace('"succeeded"', '"succeeded" ')

    # when it is posted
    with caplog.at_level(logging.INFO, logger="refundportal.security"):
        response = Client().post(URL, data=payload, content_type="application/json", **headers)

    # then it is a 400 with a short reason, logged as a security event, and nothing changed
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert fresh(payout).status == PayoutStatus.PENDING
    assert not StripeEvent.objects.exists()
    [record] = [r for r in caplog.records if getattr(r, "security_event", None)]
    assert record.security_event == "stripe_webhook_refused"
    assert record.event_reason == why


def test_a_signature_older_than_five_minutes_is_refused(db, stripe):
    # given an event signed now
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")
    signed_at = int(time.time())

    # when it arrives 5 minutes and 1 second later (a replay), it is refused
    with time_machine.travel(signed_at + 301, tick=False):
        assert deliver(event, timestamp=signed_at).status_code == 400
    assert fresh(payout).status == PayoutStatus.PENDING
    assert not StripeEvent.objects.exists()

    # and within the 5 minutes it is taken
    with time_machine.travel(signed_at + 299, tick=False):
        assert deliver(event, timestamp=signed_at).status_code == 200
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


def test_without_a_configured_secret_every_event_is_refused(db, stripe, settings):
    payout, refund_id = pending_payout(stripe)
    settings.STRIPE_WEBHOOK_SECRET = ""
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")
    assert deliver(event, secret="").status_code == 400
    assert fresh(payout).status == PayoutStatus.PENDING
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize("body", ["{not json", '["a list"]', '{"no": "id"}'])
def test_a_signed_body_that_is_no_event_is_refused(db, stripe, body):
    assert deliver(body).status_code == 400
    assert not StripeEvent.objects.exists()


def test_only_post(db, stripe):
    assert Client().get(URL).status_code == 405


def test_the_endpoint_answers_whatever_the_gateway(db, settings):
    # given the fake gateway (the default), and a signed event of a refund not ours
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    assert settings.PAYMENT_GATEWAY == "fake"
    elsewhere = StripeServer()
    elsewhere.ledger.append(
        LedgerRefund(
            id="re_x",
            idempotency_key="",
            amount=500,
            currency="usd",
            payment_intent="pi_other",
            charge=None,
            metadata={},
            status="succeeded",
        )
    )
    event = elsewhere.event("refund.created", elsewhere.refund_object("re_x"))
    assert deliver(event).json()["outcome"] == "not-ours"


def test_an_event_of_tens_of_kilobytes_is_taken(db, stripe):
    # given a refund event whose metadata is large (Stripe allows 50 keys of 500 characters)
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")
    event["data"]["object"]["metadata"].update({f"k{i}": "x" * 500 for i in range(49)})
    event["data"]["previous_attributes"] = {"description": "y" * 40_000}
    assert len(json.dumps(event)) > 60_000

    # then it is not refused for its size
    assert deliver(event).status_code == 200
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


# --- recorded once -------------------------------------------------------------------------------


def test_a_redelivered_event_is_answered_and_does_nothing(db, stripe):
    # given an event that settled a payout
    _, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")
    assert deliver(event).json()["outcome"] == "succeeded"

    # when Stripe delivers it again
    response = deliver(event)

    # then it is answered 200 and nothing happens twice
    assert response.status_code == 200
    assert response.json()["outcome"] == "duplicate"
    assert StripeEvent.objects.count() == 1
    assert Event.objects.filter(kind="payout.succeeded").count() == 1


def test_a_crash_mid_handling_leaves_the_event_unrecorded_for_redelivery(db, stripe, monkeypatch):
    # given a handler that settles the payout and then crashes
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")

    def crashing(refund: dict[str, Any], at: Any) -> str:
        webhooks.stripe_refund_changed(refund, at)
        raise RuntimeError("worker died")

    monkeypatch.setitem(webhooks.WEBHOOK_HANDLERS, "refund.updated", crashing)

    # when the event is delivered
    with pytest.raises(RuntimeError):
        deliver(event)

    # then nothing of it stayed: no record, the payout still pending
    assert not StripeEvent.objects.exists()
    assert fresh(payout).status == PayoutStatus.PENDING
    assert not Event.objects.filter(kind="payout.succeeded").exists()

    # and Stripe's redelivery is handled
    monkeypatch.undo()
    assert deliver(event).json()["outcome"] == "succeeded"
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


def test_an_unknown_event_type_is_recorded_and_answered(db, stripe):
    event = stripe.event("payout.paid", {"id": "po_1", "object": "payout"})
    assert deliver(event).json()["outcome"] == "unhandled"
    assert StripeEvent.objects.get().object_id == "po_1"


def test_a_refund_not_made_by_us_is_recorded_and_ignored(db, stripe):
    # given a refund made in Stripe's dashboard, and one of our payouts pending
    payout, _ = pending_payout(stripe)
    foreign = {
        **stripe.refund_object(payout.gateway_reference),
        "id": "re_dashboard",
        "metadata": {},
    }

    # when its events arrive
    outcomes = [deliver(stripe.event(t, foreign)).json()["outcome"] for t in REFUND_EVENTS]

    # then they are recorded and nothing moves
    assert outcomes == ["not-ours"] * 4
    assert StripeEvent.objects.count() == 4
    assert fresh(payout).status == PayoutStatus.PENDING


# --- each handled type ---------------------------------------------------------------------------


def test_the_six_events_of_the_readme_are_handled():
    assert sorted(webhooks.WEBHOOK_HANDLERS) == sorted(
        [*REFUND_EVENTS, "charge.dispute.created", "charge.dispute.closed"]
    )


@pytest.mark.parametrize("type", REFUND_EVENTS)
def test_each_refund_event_settles_a_pending_payout(db, stripe, type):
    payout, refund_id = pending_payout(stripe)
    stripe.settle(refund_id, "succeeded")
    assert deliver(refund_event(stripe, type, refund_id)).status_code == 200
    payout = fresh(payout)
    assert payout.status == PayoutStatus.SUCCEEDED
    assert payout.gateway_reference == refund_id


def test_a_succeeded_refund_settles_the_case_as_today(
    buyer, seller, stripe, django_capture_on_commit_callbacks
):
    # given an accepted refund case whose Stripe refund is pending
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), payment_reference="pi_3Case")
    case = file_refund(order, amount="59.90")
    stripe.answer("pending")
    with django_capture_on_commit_callbacks(execute=True):
        refund_services.refund_accept(case=case, actor=seller)
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUND_PENDING
    [refund] = stripe.ledger

    # when Stripe's webhook says the refund succeeded
    stripe.settle(refund.id, "succeeded")
    deliver(refund_event(stripe, "refund.updated", refund.id))

    # then the case is refunded, and buyer and seller are told the money moved
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUNDED
    assert Event.objects.filter(kind="payout.succeeded").count() == 1
    assert len(stripe.ledger) == 1


@pytest.mark.parametrize(
    ("type", "status", "reason", "words"),
    [
        ("refund.failed", "failed", "expired_or_canceled_card", "expired or was cancelled"),
        ("refund.updated", "failed", "lost_or_stolen_card", "lost or stolen"),
        ("charge.refund.updated", "canceled", None, "canceled"),
        ("refund.updated", "canceled", "merchant_request", "marketplace's request"),
    ],
)
def test_a_failed_or_canceled_refund_fails_the_payout_definitely(
    db, stripe, type, status, reason, words
):
    # given a pending refund
    payout, refund_id = pending_payout(stripe)

    # when Stripe says it failed or was cancelled
    stripe.settle(refund_id, status, reason)
    deliver(refund_event(stripe, type, refund_id))

    # then the payout failed definitely, with Stripe's reason in words, and nothing retries it
    payout = fresh(payout)
    assert payout.status == PayoutStatus.FAILED
    assert payout.failure_definite
    assert refund_id in payout.failure_reason and words in payout.failure_reason
    later = timezone.now() + timedelta(days=2)
    assert payout_services.payouts_due(now=later) == []


@pytest.mark.parametrize("status", ["pending", "requires_action"])
def test_a_pending_refund_we_never_heard_of_is_found_by_its_metadata(db, stripe, status):
    # given our call made the refund but the connection broke before the answer
    stripe.answer("drop")
    outcome, payout = attempt(make_payout(stripe_order()))
    assert (outcome, payout.gateway_reference) == ("timeout", "")
    [refund] = stripe.ledger
    stripe.settle(refund.id, status)

    # when Stripe's refund.created arrives
    created = int(time.time())
    assert deliver(refund_event(stripe, "refund.created", refund.id)).json()["outcome"] == (
        "pending"
    )

    # then the payout holds the refund id, to be read back if nothing more is heard for 30 min
    payout = fresh(payout)
    assert payout.status == PayoutStatus.PENDING
    assert payout.gateway_reference == refund.id
    assert payout.next_attempt_at.timestamp() == created + 30 * 60


def test_a_succeeded_refund_we_never_heard_of_settles_the_payout(db, stripe):
    stripe.answer("drop")
    _, payout = attempt(make_payout(stripe_order()))
    [refund] = stripe.ledger
    deliver(refund_event(stripe, "refund.created", refund.id))
    payout = fresh(payout)
    assert (payout.status, payout.gateway_reference) == (PayoutStatus.SUCCEEDED, refund.id)
    assert len(stripe.ledger) == 1


# --- out of order --------------------------------------------------------------------------------


def test_an_older_pending_event_after_success_moves_nothing(db, stripe):
    # given a refund created pending, then succeeded; Stripe delivers the success first
    payout, refund_id = pending_payout(stripe)
    was_pending = refund_event(stripe, "refund.created", refund_id)
    stripe.settle(refund_id, "succeeded")
    deliver(refund_event(stripe, "refund.updated", refund_id))
    settled = fresh(payout)

    # when the older pending event arrives
    assert deliver(was_pending).json()["outcome"] == "already-settled"

    # then the payout stays as it was
    payout = fresh(payout)
    assert payout.status == PayoutStatus.SUCCEEDED
    assert (payout.succeeded_at, payout.next_attempt_at) == (settled.succeeded_at, None)


def test_a_success_after_a_failure_moves_nothing(db, stripe):
    payout, refund_id = pending_payout(stripe)
    stripe.settle(refund_id, "failed", "declined")
    deliver(refund_event(stripe, "refund.failed", refund_id))
    deliver(refund_event(stripe, "refund.updated", refund_id, status="succeeded"))
    assert fresh(payout).status == PayoutStatus.FAILED


def test_a_late_event_of_a_refund_from_before_a_staff_retry_moves_nothing(db, stripe, staff):
    # given a refund that failed, and a staff retry whose call then broke before the answer
    payout, old_id = pending_payout(stripe)
    with time_machine.travel(timezone.now() - timedelta(minutes=10)):
        stripe.ledger[0].created = int(time.time())
    stripe.settle(old_id, "failed", "declined")
    deliver(refund_event(stripe, "refund.failed", old_id))
    payout_services.payout_retry(payout=fresh(payout), actor=staff)
    stripe.answer("drop")
    assert attempt(payout)[0] == "timeout"

    # when a late event of the old refund arrives (it names the same payout in its metadata)
    outcome = deliver(refund_event(stripe, "refund.created", old_id, status="pending"))

    # then it is not taken for the new attempt's refund
    assert outcome.json()["outcome"] == "not-ours"
    payout = fresh(payout)
    assert (payout.status, payout.gateway_reference) == (PayoutStatus.PENDING, "")

    # while the new refund's own event settles it
    new = stripe.ledger[1]
    deliver(refund_event(stripe, "refund.created", new.id))
    assert fresh(payout).status == PayoutStatus.SUCCEEDED


def test_a_late_event_of_an_old_refund_before_the_retry_was_sent_moves_nothing(db, stripe, staff):
    # given a refund that failed, and a staff retry not sent yet (the worker is busy)
    stripe.answer("drop")
    _, payout = attempt(make_payout(stripe_order()))
    [old] = stripe.ledger
    stripe.settle(old.id, "failed", "declined")
    deliver(refund_event(stripe, "refund.failed", old.id))
    assert fresh(payout).status == PayoutStatus.FAILED
    payout_services.payout_retry(payout=fresh(payout), actor=staff)

    # when a late pending event of the old refund arrives
    outcome = deliver(refund_event(stripe, "refund.updated", old.id, status="pending"))

    # then the retry does not take the old refund for its own
    assert outcome.json()["outcome"] == "not-ours"
    assert fresh(payout).gateway_reference == ""


def test_a_refund_that_fails_after_it_succeeded_alerts_staff_once(db, stripe, staff):
    # given a payout Stripe refunded
    outcome, payout = attempt(make_payout(stripe_order()))
    assert outcome == "succeeded"
    refund_id = payout.gateway_reference

    # when the card network fails the refund afterwards (Stripe sends it under two types)
    stripe.settle(refund_id, "failed", "expired_or_canceled_card")
    outcomes = [
        deliver(refund_event(stripe, t, refund_id)).json()["outcome"]
        for t in ("refund.failed", "charge.refund.updated")
    ]

    # then the payout is not moved back, and staff are alerted once, by email
    assert outcomes == ["reversed", "already-alerted"]
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
    alert = Event.objects.get(kind="payout.reversed")
    assert alert.payload["reference"] == refund_id
    assert "expired or was cancelled" in alert.payload["reason"]
    notifications_dispatch()
    emails = [m for m in mail.outbox if "reversed" in m.subject]
    assert {address for m in emails for address in m.to} >= {"ops@refundportal.test"}
    assert all(refund_id in m.body for m in emails)


# --- concurrency ---------------------------------------------------------------------------------


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliveries_at_once_handle_the_event_once(stripe, monkeypatch):
    # given a pending refund, and its success event delivered twice at the same moment, the
    # handling slow enough that the second delivery arrives while the first is under way
    payout, refund_id = pending_payout(stripe)
    event = refund_event(stripe, "refund.updated", refund_id, status="succeeded")

    def slow(refund: dict[str, Any], at: Any) -> object:
        outcome = webhooks.stripe_refund_changed(refund, at)
        time.sleep(0.5)
        return outcome

    monkeypatch.setitem(webhooks.WEBHOOK_HANDLERS, "refund.updated", slow)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = deliver(event).json()["outcome"]
        except Exception as exc:  # the outcome under test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then one handled it and the other found it recorded
    assert sorted(outcomes) == ["duplicate", "succeeded"]
    assert StripeEvent.objects.count() == 1
    assert Event.objects.filter(kind="payout.succeeded").count() == 1
    assert fresh(payout).status == PayoutStatus.SUCCEEDED
