"""What each viewer may see and do now (selectors), and step 2 of the filing form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import Http404
from django.test import override_settings
from django.utils import timezone

from refunds import services
from refunds.rules import refund_actions
from refunds.selectors import (
    refund_case_read,
    refund_filing_options,
    refund_list_for_user,
)
from tests.orders.factories import OrderFactory, delivered
from tests.refunds.factories import SECOND, cn, file_refund, reload


def actions(case, user, now=None):
    return [
        a["action"] for a in refund_actions(case=reload(case), user=user, now=now or timezone.now())
    ]


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00")


def test_each_party_sees_their_own_cases(buyer, seller, other_buyer, other_seller, staff, case):
    # given a case on another order of another buyer and seller
    other = file_refund(
        OrderFactory(buyer=other_buyer, shop=other_seller.shops.get()), amount="5.00"
    )

    assert list(refund_list_for_user(user=buyer)) == [case]
    assert list(refund_list_for_user(user=seller)) == [case]
    assert list(refund_list_for_user(user=other_seller)) == [other]
    assert set(refund_list_for_user(user=staff)) == {case, other}
    assert list(refund_list_for_user(user=seller, state="closed")) == []


def test_a_case_the_user_may_not_see_is_not_found(other_buyer, case):
    with pytest.raises(Http404):
        refund_case_read(user=other_buyer, public_id=case.public_id)
    with pytest.raises(Http404):
        refund_case_read(user=other_buyer, public_id="nonsense")


def test_requested_seller_may_answer_until_respond_by(buyer, seller, staff, case):
    assert actions(case, seller) == ["accept", "offer", "reject"]
    assert actions(case, buyer) == ["withdraw"]
    assert actions(case, staff) == []
    assert actions(case, seller, now=case.respond_by + SECOND) == []
    assert actions(case, buyer, now=case.respond_by + SECOND) == []
    until = refund_actions(case=reload(case), user=seller, now=timezone.now())[0]
    assert until["until"] == case.respond_by


def test_offer_made_buyer_answers_until_offer_by(buyer, seller, case):
    offered = services.refund_offer(case=case, actor=seller, amount="10.00")

    assert actions(case, buyer) == ["accept-offer", "decline-offer", "withdraw"]
    assert actions(case, seller) == []
    assert actions(case, buyer, now=offered.offer_by + SECOND) == []


def test_awaiting_return_buyer_ships_until_return_by(buyer, seller, order):
    case = file_refund(order, amount="20.00", return_item=True)
    accepted = services.refund_accept(case=case, actor=seller)

    assert actions(case, buyer) == ["withdraw", "ship-return"]
    assert actions(case, buyer, now=accepted.return_by + SECOND) == []

    shipped = services.refund_ship_return(
        case=case, actor=buyer, carrier="DHL", tracking_number="1"
    )
    assert actions(case, seller) == ["confirm-return"]
    assert actions(case, buyer) == []
    assert actions(case, seller, now=shipped.confirm_by + SECOND) == []


def test_closed_disputable_buyer_may_open_a_dispute_until_dispute_by(buyer, seller, case):
    closed = services.refund_reject(case=case, actor=seller, reason="No")

    assert actions(case, buyer) == ["open-dispute"]
    assert actions(case, seller) == []
    assert actions(case, buyer, now=closed.dispute_by + SECOND) == []


@override_settings(MARKETPLACE_TIME_ZONE="Asia/Shanghai", REFUND_WINDOWS={})
def test_filing_options_explain_each_reasons_window(buyer, seller):
    # given an order placed 1 Nov 20:00 China time, delivered 3 Nov 10:00, 15-day policy
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 20),
        return_policy=timedelta(days=15),
    )
    undelivered = refund_filing_options(order=order, user=buyer, now=cn(2026, 11, 2, 12))
    order = delivered(order, at=cn(2026, 11, 3, 10))

    # when the buyer looks at step 2 on 5 Nov
    options = {
        o["reason"]: o
        for o in refund_filing_options(order=order, user=buyer, now=cn(2026, 11, 5, 12))
    }

    # then each reason says whether it is open, and until or from when
    assert options["changed_mind"]["state"] == "open"
    assert options["changed_mind"]["closes_at"] == cn(2026, 11, 18, 10)
    assert "18 Nov 2026, 10:00 Asia/Shanghai" in options["changed_mind"]["message"]
    assert "Europe/Berlin" in options["changed_mind"]["message"]
    assert options["damaged"]["state"] == "open"
    assert options["not_received"]["state"] == "closed"
    assert options["changed_mind"]["label"] == "Changed my mind"
    before_delivery = {o["reason"]: o for o in undelivered}
    assert before_delivery["damaged"]["state"] == "not_open"
    assert before_delivery["damaged"]["opens_at"] is None
    assert before_delivery["not_received"]["state"] == "not_open"
    assert before_delivery["not_received"]["opens_at"] == cn(2026, 12, 1, 20)
