"""Chargebacks (docs/rules.md, Chargebacks): a buyer who disputes the payment with their bank is
never paid twice. Stripe's Dispute object is handed to the two entry points as Stripe shapes it;
payouts go through the real `stripe` client to the local server, whose ledger judges "paid once".
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from disputes.models import DisputeState
from kernel.errors import AmountExceedsRefundable, InvalidTransition
from notifications.tasks import notifications_dispatch
from orders.models import Event, Order
from payouts import gateway
from payouts import services as payout_services
from payouts.chargebacks import chargeback_closed, chargeback_opened
from payouts.models import Chargeback, ChargebackStatus, Payout, PayoutStatus
from payouts.sweeps import payouts_overdue_alert
from refunds.models import ClosedReason, State
from tests.conftest import requires_postgres
from tests.disputes.factories import dispute_for, open_dispute, rejected_case
from tests.orders.factories import OrderFactory
from tests.payouts.helpers import (
    attempt,
    make_payout,
    paid_order,
    pending_refund_case,
    stripe_dispute,
    stripe_order,
)
from tests.refunds.factories import file_refund

# --- Stripe's amounts back to ours ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "amount"),
    [
        (5990, "usd", "59.90"),
        (5990, "jpy", "5990"),  # zero-decimal
        (15000, "krw", "15000"),  # zero-decimal
        (5120, "kwd", "5.120"),  # three-decimal
        (12340, "bhd", "12.340"),
        (150000, "huf", "1500"),  # hundredths in Stripe's API
        (30050, "twd", "300.50"),
        (400000, "isk", "4000"),  # whole krónur, counted in hundredths
        (500000, "ugx", "5000"),  # whole shillings, counted in hundredths
    ],
)
def test_stripe_decimal_reads_stripe_amounts_per_currency(minor, currency, amount):
    # given an amount in the smallest unit as Stripe counts it
    # when it is read back
    value = gateway.stripe_decimal(minor, currency)

    # then it is the amount in the currency, and Stripe's own form of it again
    assert value == Decimal(amount)
    assert gateway.stripe_amount(value, currency) == minor


# --- opened: held, staff alerted ------------------------------------------------------------------


def test_an_opened_chargeback_holds_a_pending_payout_which_makes_no_request(db, stripe_server):
    # given a payout not yet sent on an order paid through Stripe
    order = stripe_order()
    payout = make_payout(order)
    at = timezone.now()

    # when the buyer's bank opens a chargeback, and a worker then tries the payout
    chargeback = chargeback_opened(dispute=stripe_dispute(order), at=at)
    outcome, payout = attempt(payout)

    # then the payout is held: nothing reached Stripe, and the re-dispatch leaves it alone
    assert chargeback is not None and chargeback.status == ChargebackStatus.OPEN
    assert (chargeback.amount, chargeback.currency, chargeback.reason) == (
        Decimal("59.90"),
        "USD",
        "fraudulent",
    )
    assert outcome == "held"
    assert payout.status == PayoutStatus.PENDING and payout.held_at == at
    assert stripe_server.requests == [] and stripe_server.ledger == []
    assert payout.pk not in payout_services.payouts_due(now=at + timedelta(hours=1))
    [event] = Event.objects.filter(kind="chargeback.opened")
    assert event.payload["notify"] == {"staff": True}
    assert event.payload["payouts_held"] == 1
    assert event.payload["refunds_paid"] == []
    assert event.payload["stripe_dispute_id"] == "dp_1Q2w3E4r5T6y"


def test_opened_twice_is_recorded_once(db):
    # given an order and Stripe's dispute of its payment
    order = stripe_order()
    dispute = stripe_dispute(order)

    # when the event is delivered twice
    first = chargeback_opened(dispute=dispute, at=timezone.now())
    second = chargeback_opened(dispute=dispute, at=timezone.now())

    # then one chargeback, one alert
    assert first is not None and second is not None and first.pk == second.pk
    assert Chargeback.objects.count() == 1
    assert Event.objects.filter(kind="chargeback.opened").count() == 1


def test_a_payment_that_is_no_order_of_ours_is_none(db):
    # given an order paid by another payment
    order = stripe_order(reference="pi_ours")

    # when Stripe reports a dispute of a payment we never sold
    dispute = stripe_dispute(order, payment_intent="pi_theirs", charge="ch_theirs")
    opened = chargeback_opened(dispute=dispute, at=timezone.now())
    closed = chargeback_closed(dispute={**dispute, "status": "lost"}, at=timezone.now())

    # then nothing is recorded
    assert opened is None and closed is None
    assert not Chargeback.objects.exists()


def test_the_order_is_found_by_its_charge_when_it_names_one(db):
    # given an order whose reference is the Charge
    order = stripe_order(reference="ch_3Ab")

    # when its charge is disputed (a PaymentIntent beside it)
    chargeback = chargeback_opened(
        dispute=stripe_dispute(order, payment_intent="pi_other"), at=timezone.now()
    )

    # then it is that order's chargeback
    assert chargeback is not None and chargeback.order_id == order.pk


def test_a_refund_already_paid_is_sent_to_staff_as_evidence(db, stripe_server, settings):
    # given a refund Stripe already paid on the order
    order = stripe_order()
    _, paid = attempt(make_payout(order, "20.00"))
    assert paid.status == PayoutStatus.SUCCEEDED

    # when the chargeback opens and the notices go out
    chargeback_opened(dispute=stripe_dispute(order), at=timezone.now())
    notifications_dispatch()

    # then staff are emailed its Stripe refund id to submit to the bank
    [event] = Event.objects.filter(kind="chargeback.opened")
    assert event.payload["refunds_paid"] == [paid.gateway_reference]
    [email] = [m for m in mail.outbox if "Chargeback" in m.subject]
    assert paid.gateway_reference in email.body
    assert order.number in email.subject


def test_a_payout_created_while_the_chargeback_is_open_is_held(db, stripe_server):
    # given an open chargeback
    order = stripe_order()
    chargeback_opened(dispute=stripe_dispute(order), at=timezone.now())

    # when a payout is created on the order
    outcome, payout = attempt(make_payout(order, "10.00"))

    # then it is held too
    assert outcome == "held" and payout.held_at is not None
    assert stripe_server.requests == []


# --- what the order refuses meanwhile -------------------------------------------------------------


def test_no_refund_request_cancellation_or_dispute_while_a_chargeback_is_open(buyer, seller):
    # given a closed, disputable case, an order placed yesterday and one placed just now, all
    # charged back
    case = rejected_case(buyer=buyer, seller=seller)
    older = paid_order(buyer, seller, reference="pi_older")
    fresh = OrderFactory(buyer=buyer, shop=seller.shops.get(), payment_reference="pi_fresh")
    for order in (case.order, older, fresh):
        chargeback_opened(dispute=stripe_dispute(order, id=f"dp_{order.pk}"), at=timezone.now())

    # when the buyer asks for a refund, cancels, or disputes the case
    # then each is refused, naming the bank
    with pytest.raises(InvalidTransition, match="bank"):
        file_refund(older)
    with pytest.raises(InvalidTransition, match="bank"):
        payout_services.order_cancel_by_buyer(order=fresh, actor=buyer)
    with pytest.raises(InvalidTransition, match="bank"):
        open_dispute(case=case)


# --- closed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stripe_status", ["won", "warning_closed", "charge_refunded"])
def test_a_won_chargeback_releases_the_held_payout_which_is_paid_once(
    buyer, seller, stripe_server, django_capture_on_commit_callbacks, stripe_status
):
    # given a case whose payout is held by an open chargeback
    order = paid_order(buyer, seller)
    case = pending_refund_case(order)
    dispute = stripe_dispute(order)
    chargeback_opened(dispute=dispute, at=timezone.now())
    assert attempt(case.payout)[0] == "held"

    # when the bank decides for the marketplace (delivered twice)
    with django_capture_on_commit_callbacks(execute=True):
        closed = chargeback_closed(dispute={**dispute, "status": stripe_status}, at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        chargeback_closed(dispute={**dispute, "status": stripe_status}, at=timezone.now())

    # then the payout went out once, and the case settled as usual
    assert closed is not None and closed.status == ChargebackStatus.WON
    assert closed.stripe_status == stripe_status
    assert [r.amount for r in stripe_server.ledger] == [5990]
    case.refresh_from_db()
    assert case.state == State.REFUNDED
    [event] = Event.objects.filter(kind="chargeback.closed")
    assert event.payload["outcome"] == "won" and event.payload["payouts_released"] == 1
    assert set(event.payload["notify"]) == {"buyer", "seller", "staff"}


def test_a_lost_chargeback_counts_as_refunded_cancels_held_payouts_and_closes_the_case(
    buyer, seller, stripe_server
):
    # given a case whose 59.90 payout is held by an open chargeback of 59.90
    order = paid_order(buyer, seller)
    case = pending_refund_case(order)
    dispute = stripe_dispute(order)
    chargeback_opened(dispute=dispute, at=timezone.now())

    # when the bank takes the money back (delivered twice)
    closed = chargeback_closed(dispute={**dispute, "status": "lost"}, at=timezone.now())
    chargeback_closed(dispute={**dispute, "status": "lost"}, at=timezone.now())

    # then the amount counts as refunded, the payout is cancelled (never paid), the case closed
    assert closed is not None and closed.status == ChargebackStatus.LOST
    order.refresh_from_db()
    assert (order.charged_back, order.reserved, order.refundable) == (
        Decimal("59.90"),
        Decimal("0"),
        Decimal("0"),
    )
    payout = Payout.objects.get(pk=case.payout_id)
    assert payout.status == PayoutStatus.CANCELLED
    assert attempt(payout)[0] != "succeeded" and stripe_server.requests == []
    case.refresh_from_db()
    assert (case.state, case.closed_reason) == (State.CLOSED, ClosedReason.CHARGEBACK)
    assert case.dispute_by is None  # final
    [event] = Event.objects.filter(kind="chargeback.closed")
    assert event.payload["outcome"] == "lost" and event.payload["payouts_cancelled"] == 1
    assert event.payload["amount"] == "59.900" and event.payload["currency"] == "USD"
    assert Event.objects.filter(kind="refund.closed_by_chargeback").count() == 1


def test_a_partial_lost_chargeback_lowers_what_can_still_be_refunded(buyer, seller):
    # given an order of 59.90 and a chargeback of 20.00
    order = paid_order(buyer, seller)
    dispute = stripe_dispute(order, amount=2000, status="lost")

    # when it is lost
    chargeback_opened(dispute=dispute, at=timezone.now())
    chargeback_closed(dispute=dispute, at=timezone.now())

    # then 39.90 can still be refunded, and no more
    order.refresh_from_db()
    assert order.refundable == Decimal("39.90")
    with pytest.raises(AmountExceedsRefundable, match=r"39\.90 USD"):
        make_payout(order, "40.00")


def test_a_lost_chargeback_closes_an_undecided_dispute(buyer, seller):
    # given an open dispute on the order
    dispute = dispute_for(buyer=buyer, seller=seller)
    order = dispute.case.order
    order.payment_reference = "pi_disputed"
    order.save()
    stripe = stripe_dispute(order)
    chargeback_opened(dispute=stripe, at=timezone.now())

    # when the chargeback is lost
    chargeback_closed(dispute={**stripe, "status": "lost"}, at=timezone.now())

    # then the dispute and its case close with the reason chargeback
    dispute.refresh_from_db()
    dispute.case.refresh_from_db()
    assert dispute.state == DisputeState.CHARGEBACK
    assert dispute.case.closed_reason == ClosedReason.CHARGEBACK
    assert Event.objects.filter(kind="dispute.closed_by_chargeback").count() == 1


def test_closed_before_created_settles_and_the_late_created_changes_nothing(db, stripe_server):
    # given a pending payout, and Stripe's `closed` arriving before its `created`
    order = stripe_order()
    payout = make_payout(order)
    dispute = stripe_dispute(order)

    # when the lost `closed` comes first, then the `created`
    closed = chargeback_closed(dispute={**dispute, "status": "lost"}, at=timezone.now())
    late = chargeback_opened(dispute=dispute, at=timezone.now())

    # then the chargeback is lost, the payout cancelled and never sent, and no stale alert
    assert closed is not None and late is not None and late.pk == closed.pk
    assert late.status == ChargebackStatus.LOST
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.CANCELLED
    assert stripe_server.requests == []
    assert not Event.objects.filter(kind="chargeback.opened").exists()


# --- the pages say why nothing moves -------------------------------------------------------------


def test_the_case_page_tells_buyer_and_seller_why_nothing_moves(client, buyer, seller):
    # given a case held by a chargeback
    order = paid_order(buyer, seller)
    case = pending_refund_case(order)
    chargeback_opened(dispute=stripe_dispute(order), at=timezone.now())

    # when each party opens the case page
    pages = {}
    for user in (buyer, seller):
        client.force_login(user)
        pages[user] = client.get(f"/refunds/{case.public_id}/").content.decode()

    # then each reads that the bank decides and nothing is paid meanwhile
    assert "You disputed the payment of this order with your bank" in pages[buyer]
    assert "The buyer disputed the payment of this order with their bank" in pages[seller]


def test_the_dispute_page_tells_the_parties_why_nothing_moves(client, buyer, seller):
    # given a dispute whose order's payment is charged back
    dispute = dispute_for(buyer=buyer, seller=seller)
    chargeback_opened(dispute=stripe_dispute(dispute.case.order), at=timezone.now())

    # when the buyer opens the dispute page
    client.force_login(buyer)
    page = client.get(f"/disputes/{dispute.public_id}/").content.decode()

    # then it says why
    assert "On hold: the payment is disputed with the bank" in page


def test_the_case_page_shows_no_hold_once_the_chargeback_is_won(client, buyer, seller):
    # given a chargeback the marketplace won
    order = paid_order(buyer, seller)
    case = file_refund(order)
    dispute = stripe_dispute(order)
    chargeback_opened(dispute=dispute, at=timezone.now())
    chargeback_closed(dispute={**dispute, "status": "won"}, at=timezone.now())

    # when the buyer opens the case page
    client.force_login(buyer)
    page = client.get(f"/refunds/{case.public_id}/").content.decode()

    # then there is no hold
    assert "On hold" not in page


# --- concurrency: a payout on its way while the chargeback opens ---------------------------------


def unsent_payout(order: Order) -> Payout:
    """A committed pending payout no worker has sent: a worker's claim covers the commit (under
    the test settings its task runs at once and finds it claimed), then runs out."""
    with transaction.atomic():
        payout = make_payout(order)
        Payout.objects.filter(pk=payout.pk).update(
            claimed_until=timezone.now() + timedelta(minutes=5)
        )
    Payout.objects.filter(pk=payout.pk).update(claimed_until=None)
    return payout


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("chargeback_after", [0.0, 0.3, 1.5])
def test_a_payout_sent_while_the_chargeback_opens_is_held_or_its_refund_id_reaches_staff(
    stripe_server, chargeback_after
):
    # given a pending payout, and Stripe answering after a second
    # (a reference of its own: rows other tests committed never answer for it)
    order = stripe_order(reference=f"pi_{secrets.token_hex(8)}")
    payout = unsent_payout(order)
    stripe_server.answer("hang:1")
    outcomes: list[str] = []

    def send() -> None:
        try:
            outcomes.append(payout_services.payout_attempt(payout_id=payout.pk))
        finally:
            connection.close()

    def charge_back() -> None:
        try:
            time.sleep(chargeback_after)
            chargeback_opened(dispute=stripe_dispute(order), at=timezone.now())
        finally:
            connection.close()

    # when a worker sends it while the chargeback opens (before, during, after the call)
    threads = [threading.Thread(target=send), threading.Thread(target=charge_back)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then either nothing reached Stripe and the payout is held, or it was paid once and staff
    # hold its refund id (in the opening alert or in a follow-up), never both, never neither
    payout.refresh_from_db()
    evidence = [
        refund
        for event in Event.objects.filter(kind__in=["chargeback.opened", "chargeback.refund_paid"])
        for refund in event.payload.get("refunds_paid", [])
    ]
    if outcomes == ["held"] or outcomes == ["skipped"]:
        assert stripe_server.ledger == [] and payout.held_at is not None
        assert evidence == []
    else:
        assert outcomes == ["succeeded"]
        [refund] = stripe_server.ledger
        assert payout.gateway_reference == refund.id
        assert evidence == [refund.id]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_chargeback_opened_first_stops_the_payout_before_any_request(stripe_server):
    # given a chargeback opened on the order, committed
    # (a reference of its own: rows other tests committed never answer for it)
    order = stripe_order(reference=f"pi_{secrets.token_hex(8)}")
    payout = unsent_payout(order)
    with transaction.atomic():
        chargeback_opened(dispute=stripe_dispute(order), at=timezone.now())

    # when two workers try the payout at once
    results: list[str] = []

    def send() -> None:
        try:
            results.append(payout_services.payout_attempt(payout_id=payout.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then neither reached Stripe
    assert results == ["held", "held"]
    assert stripe_server.requests == []


def test_the_dispute_is_not_offered_while_a_chargeback_is_open(api, buyer, seller):
    # given a rejected case the buyer could dispute
    case = rejected_case(buyer=buyer, seller=seller)
    detail = f"/api/v1/refunds/{case.public_id}/"
    assert [a["action"] for a in api(buyer).get(detail).json()["actions"]] == ["open-dispute"]

    # when the buyer's bank opens a chargeback on the order
    chargeback_opened(dispute=stripe_dispute(case.order), at=timezone.now())

    # then the API no longer offers the dispute (the one rule the service asks, too)
    assert api(buyer).get(detail).json()["actions"] == []
    listed = api(buyer).get("/api/v1/refunds/").json()["results"]
    assert [c["actions"] for c in listed if c["id"] == str(case.public_id)] == [[]]


def test_a_held_payout_raises_no_overdue_alert_until_it_is_released(db, stripe_server):
    # given a payout held by a chargeback, past its 48-hour payout deadline
    order = stripe_order()
    make_payout(order)
    dispute = stripe_dispute(order)
    chargeback_opened(dispute=dispute, at=timezone.now())
    late = timezone.now() + timedelta(hours=48, seconds=1)

    # when the overdue sweep runs, then it leaves the held payout alone
    assert payouts_overdue_alert(now=late) == 0

    # and once the chargeback is won and the payout still unpaid, it is judged as any other
    chargeback_closed(dispute={**dispute, "status": "won"}, at=timezone.now())
    assert payouts_overdue_alert(now=late) == 1
    assert Event.objects.filter(kind="payout.overdue").count() == 1
