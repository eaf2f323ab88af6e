"""System transitions (docs/rules.md, A passed deadline is final): each deadline moves its case
once, and the next clock starts at the deadline, not when the sweep happened to run."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from kernel import windows
from orders.models import Event
from payouts.models import Payout
from refundportal.deadlines import enforce_all
from refunds import services
from refunds.models import ClosedReason, State
from refunds.sweeps import refund_sweeps_run
from tests.orders.factories import OrderFactory
from tests.refunds.factories import SECOND, file_refund, reload

LATE = timedelta(days=3, hours=5)  # the sweep was down for a while


def events_of(case, kind):
    return Event.objects.filter(case_id=case.public_id, kind=kind).count()


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00")


@pytest.fixture
def return_case(order):
    return file_refund(order, amount="20.00", return_item=True)


def test_nothing_moves_one_second_before_respond_by(case):
    enforce_all(now=case.respond_by - SECOND)

    assert reload(case).state == State.REQUESTED
    assert events_of(case, "refund.auto_accepted") == 0


def test_seller_silence_auto_accepts_and_pays(case):
    # given a request the seller never answered
    # when the sweep runs one second after respond_by
    enforce_all(now=case.respond_by + SECOND)

    # then it is accepted as of respond_by, once, and the payout is queued
    fresh = reload(case)
    assert fresh.state == State.REFUND_PENDING
    assert fresh.auto_accepted
    assert fresh.approved_amount == Decimal("20.00")
    assert fresh.approved_at == case.respond_by
    assert events_of(case, "refund.auto_accepted") == 1
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
    assert payout.amount == Decimal("20.00")
    assert reload(case).payout_id == payout.pk


def test_auto_accepted_return_clock_starts_at_respond_by_not_at_the_sweep(return_case):
    # given a return request the seller never answered, swept three days late
    enforce_all(now=return_case.respond_by + LATE)

    # then the RMA is issued as of respond_by, and return_by counts from there
    fresh = reload(return_case)
    assert fresh.state == State.AWAITING_RETURN
    assert fresh.rma_issued_at == return_case.respond_by
    assert fresh.return_by == windows.return_by(rma_issued_at=return_case.respond_by)
    assert fresh.return_by != windows.return_by(rma_issued_at=return_case.respond_by + LATE)
    assert fresh.issued_return_number == return_case.return_number
    assert Payout.objects.count() == 0


def test_offer_lapses_into_offer_declined_at_offer_by(case, seller):
    # given an offer the buyer never answered
    offered = services.refund_offer(case=case, actor=seller, amount="10.00")

    # when the sweep runs late
    refund_sweeps_run(now=offered.offer_by + LATE)

    # then it closed at offer_by, and the dispute window runs from offer_by
    fresh = reload(case)
    assert fresh.state == State.CLOSED
    assert fresh.closed_reason == ClosedReason.OFFER_DECLINED
    assert fresh.closed_at == offered.offer_by
    assert fresh.dispute_by == offered.offer_by + timedelta(hours=48)
    assert events_of(case, "refund.offer_lapsed") == 1


def test_unshipped_return_expires_at_return_by(return_case, seller):
    accepted = services.refund_accept(case=return_case, actor=seller)

    refund_sweeps_run(now=accepted.return_by - SECOND)
    assert reload(return_case).state == State.AWAITING_RETURN

    refund_sweeps_run(now=accepted.return_by + LATE)
    fresh = reload(return_case)
    assert fresh.state == State.CLOSED
    assert fresh.closed_reason == ClosedReason.EXPIRED
    assert fresh.closed_at == accepted.return_by
    assert fresh.dispute_by == accepted.return_by + timedelta(hours=48)


def test_seller_silence_after_the_return_shipped_confirms_it(return_case, buyer, seller):
    services.refund_accept(case=return_case, actor=seller)
    shipped = services.refund_ship_return(
        case=return_case, actor=buyer, carrier="DHL", tracking_number="JD1"
    )

    enforce_all(now=shipped.confirm_by + LATE)

    fresh = reload(return_case)
    assert fresh.state == State.REFUND_PENDING
    assert fresh.approved_at == shipped.confirm_by
    assert events_of(return_case, "refund.return_auto_confirmed") == 1
    assert Payout.objects.filter(idempotency_key=f"refund:{return_case.public_id}").count() == 1


def test_sweep_run_twice_moves_each_case_once(buyer, seller):
    # given five silent requests on five orders
    cases = [
        file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="5.00")
        for _ in range(5)
    ]
    due = max(c.respond_by for c in cases) + SECOND

    # when the sweep runs twice
    first = refund_sweeps_run(now=due)
    second = refund_sweeps_run(now=due)

    # then each case was moved by the first run only
    assert first["auto_accept"] == 5
    assert second["auto_accept"] == 0
    assert [events_of(c, "refund.auto_accepted") for c in cases] == [1] * 5
    assert Payout.objects.count() == 5


def test_seller_response_reminder_is_sent_once_when_24_hours_remain(case):
    remind_at = case.respond_by - timedelta(hours=24)

    refund_sweeps_run(now=remind_at - SECOND)
    assert events_of(case, "reminder.seller_response") == 0

    refund_sweeps_run(now=remind_at + SECOND)
    refund_sweeps_run(now=remind_at + timedelta(hours=1))
    assert events_of(case, "reminder.seller_response") == 1
    event = Event.objects.get(case_id=case.public_id, kind="reminder.seller_response")
    assert event.payload["notify"] == {"seller": case.order.shop.owner_id}


def test_no_reminder_once_the_deadline_has_passed(case):
    refund_sweeps_run(now=case.respond_by + SECOND)

    assert events_of(case, "reminder.seller_response") == 0
    assert events_of(case, "refund.auto_accepted") == 1


def test_return_shipping_reminder_is_sent_once_48_hours_before(return_case, seller):
    accepted = services.refund_accept(case=return_case, actor=seller)
    remind_at = accepted.return_by - timedelta(hours=48)

    refund_sweeps_run(now=remind_at - SECOND)
    refund_sweeps_run(now=remind_at + SECOND)
    refund_sweeps_run(now=remind_at + timedelta(hours=2))

    assert events_of(return_case, "reminder.return_shipping") == 1


def test_dispute_window_reminder_is_sent_once(case, seller):
    closed = services.refund_reject(case=case, actor=seller, reason="No")
    remind_at = closed.dispute_by - timedelta(hours=12)

    refund_sweeps_run(now=remind_at + SECOND)
    refund_sweeps_run(now=remind_at + timedelta(hours=1))

    assert events_of(case, "reminder.dispute_window") == 1
