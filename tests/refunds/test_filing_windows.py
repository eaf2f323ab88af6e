"""Each reason's filing window (docs/rules.md, Windows; Filing a request), one second either side of
its edges, through the API.

Deadlines are calendar days in the marketplace zone (Asia/Shanghai) unless they are exact
durations (the seller's return policy, not_received's 30-day fallback). The buyer persona lives
in Europe/Berlin, so a deadline computed or shown in the wrong zone shows up here.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings

from refunds.models import RefundCase
from tests.orders.factories import OrderFactory, delivered, shipped
from tests.refunds.factories import SECOND, cn

URL = "/api/v1/refunds/"


@pytest.fixture(autouse=True)
def china_marketplace():
    with override_settings(MARKETPLACE_TIME_ZONE="Asia/Shanghai", REFUND_WINDOWS={}):
        yield


def file_at(api, buyer, order, reason, instant, amount="10.00"):
    with time_machine.travel(instant, tick=False):
        return api(buyer).post(
            URL, {"order": order.number, "reason": reason, "amount": amount}, format="json"
        )


def assert_filed(response):
    assert response.status_code == 201, response.json()
    assert response.json()["state"] == "requested"


def assert_refused(response, code, *names):
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == code
    for name in names:
        assert name in error["message"], error["message"]
    assert RefundCase.objects.count() == 0


# --- changed_mind / other -------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["changed_mind", "other"])
def test_change_of_mind_open_until_end_of_seventh_day_china_time(api, buyer, seller, reason):
    # given an undelivered order placed 1 Nov 20:00 China time (the documented example)
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 20),
        return_policy=timedelta(minutes=15),
    )
    edge = cn(2026, 11, 8, 23, 59, 59, 999999)

    # when the buyer files one second before the end of 8 Nov China time
    response = file_at(api, buyer, order, reason, edge - SECOND)

    # then it is accepted
    assert_filed(response)


@pytest.mark.parametrize("reason", ["changed_mind", "other"])
def test_change_of_mind_closed_one_second_after_and_names_the_deadline(api, buyer, seller, reason):
    # given the same order
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 20),
        return_policy=timedelta(minutes=15),
    )
    edge = cn(2026, 11, 8, 23, 59, 59, 999999)

    # when the buyer files one second after the window's end
    response = file_at(api, buyer, order, reason, edge + SECOND)

    # then window_closed names the deadline in the marketplace zone and the buyer's own
    assert_refused(
        response,
        "window_closed",
        "8 Nov 2026, 23:59 Asia/Shanghai",
        "8 Nov 2026, 16:59 Europe/Berlin",
    )


def test_order_placed_at_2330_china_time_counts_the_china_date(api, buyer, seller):
    # given an order placed 1 Nov 23:30 China time (15:30 UTC): a UTC calendar would end the
    # window at 8 Nov 23:59 UTC, i.e. 9 Nov 07:59 China time
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 23, 30))
    edge = cn(2026, 11, 8, 23, 59, 59, 999999)

    # when the buyer files one second before and one second after 8 Nov ends in China
    before = file_at(api, buyer, order, "changed_mind", edge - SECOND)
    RefundCase.objects.all().delete()
    after = file_at(api, buyer, order, "changed_mind", edge + SECOND)

    # then the China date decides
    assert_filed(before)
    assert_refused(after, "window_closed", "8 Nov 2026, 23:59 Asia/Shanghai")


def test_order_placed_just_after_midnight_china_time_is_a_day_later_than_utc(api, buyer, seller):
    # given an order placed 2 Nov 00:30 China time, which is still 1 Nov in UTC
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 2, 0, 30))
    edge = cn(2026, 11, 9, 23, 59, 59, 999999)

    # when the buyer files on 9 Nov at noon China time (a UTC calendar closed 8 Nov 23:59 UTC)
    noon = file_at(api, buyer, order, "changed_mind", cn(2026, 11, 9, 12))
    RefundCase.objects.all().delete()
    after = file_at(api, buyer, order, "changed_mind", edge + SECOND)

    # then it is still open, and closes only after 9 Nov ends in China
    assert_filed(noon)
    assert_refused(after, "window_closed", "9 Nov 2026, 23:59 Asia/Shanghai")


def test_seller_return_policy_running_later_than_seven_days_wins(api, buyer, seller):
    # given an order whose copy of the return policy is 20 days, delivered 3 Nov 10:00 China
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 10),
        return_policy=timedelta(days=20),
    )
    order = shipped(order, at=cn(2026, 11, 2, 10))
    order = delivered(order, at=cn(2026, 11, 3, 10))
    # the policy is an exact duration from delivery: 23 Nov 10:00:00 China time
    edge = cn(2026, 11, 23, 10)

    # when the buyer files one second before and one second after it
    before = file_at(api, buyer, order, "changed_mind", edge - SECOND)
    RefundCase.objects.all().delete()
    after = file_at(api, buyer, order, "changed_mind", edge + SECOND)

    # then the policy, not the 7 days, decides
    assert_filed(before)
    assert_refused(after, "window_closed", "23 Nov 2026, 10:00 Asia/Shanghai")


def test_short_return_policy_does_not_cut_the_seven_days(api, buyer, seller):
    # given a 15-minute return policy and delivery on the day after purchase
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 10),
        return_policy=timedelta(minutes=15),
    )
    order = delivered(order, at=cn(2026, 11, 2, 10))

    # when the buyer files on day 7, long after the policy ran out
    response = file_at(api, buyer, order, "changed_mind", cn(2026, 11, 8, 23, 59, 58))

    # then the 7 calendar days still apply
    assert_filed(response)


# --- not_received ---------------------------------------------------------------------------


def test_not_received_opens_at_deliver_by(api, buyer, seller):
    # given an order promised by 20 Nov 18:00 China time
    deliver_by = cn(2026, 11, 20, 18)
    order = OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10), deliver_by=deliver_by
    )
    order = shipped(order, at=cn(2026, 11, 2, 10))

    # when the buyer files one second before and one second after the promise
    before = file_at(api, buyer, order, "not_received", deliver_by - SECOND)
    after = file_at(api, buyer, order, "not_received", deliver_by + SECOND)

    # then it is not open before (naming when it opens), and open after
    assert before.status_code == 400
    assert before.json()["error"]["code"] == "window_not_open"
    assert "20 Nov 2026, 18:00 Asia/Shanghai" in before.json()["error"]["message"]
    assert_filed(after)


def test_not_received_closes_fourteen_calendar_days_after_it_opened(api, buyer, seller):
    # given an order promised by 20 Nov 18:00 China time, never delivered
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 10),
        deliver_by=cn(2026, 11, 20, 18),
    )
    edge = cn(2026, 12, 4, 23, 59, 59, 999999)

    # when the buyer files one second before and after the end of 4 Dec China time
    before = file_at(api, buyer, order, "not_received", edge - SECOND)
    RefundCase.objects.all().delete()
    after = file_at(api, buyer, order, "not_received", edge + SECOND)

    # then
    assert_filed(before)
    assert_refused(after, "window_closed", "4 Dec 2026, 23:59 Asia/Shanghai")


def test_not_received_without_promise_opens_thirty_days_after_shipping(api, buyer, seller):
    # given an order with no promised date, shipped 2 Nov 09:15 China time
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10))
    order = shipped(order, at=cn(2026, 11, 2, 9, 15))
    opens = cn(2026, 12, 2, 9, 15)

    # when the buyer files one second before and after shipped_at + 30 days
    before = file_at(api, buyer, order, "not_received", opens - SECOND)
    after = file_at(api, buyer, order, "not_received", opens + SECOND)

    # then
    assert before.json()["error"]["code"] == "window_not_open"
    assert "2 Dec 2026, 09:15 Asia/Shanghai" in before.json()["error"]["message"]
    assert_filed(after)


def test_not_received_never_shipped_opens_thirty_days_after_placing(api, buyer, seller):
    # given an order never shipped, with no promised date
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10))
    opens = cn(2026, 12, 1, 10)

    # when the buyer files one second before and after placed_at + 30 days
    before = file_at(api, buyer, order, "not_received", opens - SECOND)
    after = file_at(api, buyer, order, "not_received", opens + SECOND)

    # then
    assert before.json()["error"]["code"] == "window_not_open"
    assert_filed(after)


def test_not_received_is_never_open_after_delivery(api, buyer, seller):
    # given an order promised by 20 Nov but delivered 25 Nov 12:00 China time
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 10),
        deliver_by=cn(2026, 11, 20, 18),
    )
    order = delivered(order, at=cn(2026, 11, 25, 12))

    # when the buyer files "not received" one second after the delivery
    response = file_at(api, buyer, order, "not_received", cn(2026, 11, 25, 12) + SECOND)

    # then the window is closed at the delivery
    assert_refused(response, "window_closed", "25 Nov 2026, 12:00 Asia/Shanghai")


def test_not_received_delivered_before_it_opened_never_opens(api, buyer, seller):
    # given an order promised by 20 Nov and delivered early, on 10 Nov
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        placed_at=cn(2026, 11, 1, 10),
        deliver_by=cn(2026, 11, 20, 18),
    )
    order = delivered(order, at=cn(2026, 11, 10, 12))

    # when the buyer files after the promised date
    response = file_at(api, buyer, order, "not_received", cn(2026, 11, 20, 18) + SECOND)

    # then it is closed (the item arrived)
    assert_refused(response, "window_closed")


# --- problem reasons --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["not_as_described", "damaged", "wrong_item"])
def test_problem_reasons_are_not_open_before_delivery(api, buyer, seller, reason):
    # given a shipped, undelivered order
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10))
    order = shipped(order, at=cn(2026, 11, 2, 10))

    # when the buyer files a problem with the item
    response = file_at(api, buyer, order, reason, cn(2026, 11, 3, 10))

    # then it opens only on delivery
    assert_refused(response, "window_not_open", "delivered")


@pytest.mark.parametrize("reason", ["not_as_described", "damaged", "wrong_item"])
def test_problem_reasons_open_fourteen_calendar_days_after_delivery(api, buyer, seller, reason):
    # given an order delivered 3 Nov 22:00 China time
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10))
    order = delivered(order, at=cn(2026, 11, 3, 22))
    edge = cn(2026, 11, 17, 23, 59, 59, 999999)

    # when the buyer files one second before and after the end of 17 Nov China time
    before = file_at(api, buyer, order, reason, edge - SECOND)
    RefundCase.objects.all().delete()
    after = file_at(api, buyer, order, reason, edge + SECOND)

    # then
    assert_filed(before)
    assert_refused(after, "window_closed", "17 Nov 2026, 23:59 Asia/Shanghai")


@pytest.mark.parametrize("reason", ["not_as_described", "damaged", "wrong_item"])
def test_problem_reasons_open_at_delivery(api, buyer, seller, reason):
    # given an order delivered 3 Nov 22:00 China time
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 10))
    order = delivered(order, at=cn(2026, 11, 3, 22))

    # when the buyer files one second after the delivery
    response = file_at(api, buyer, order, reason, cn(2026, 11, 3, 22) + SECOND)

    # then it is open
    assert_filed(response)
