"""The case thread is the order's thread (docs/rules.md, Messages and the invoice; Refund cases):
the parties write, staff read."""

from __future__ import annotations

import pytest

from orders.models import Event
from orders.services import message_post_on_order
from refunds import services
from tests.refunds.factories import file_refund


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00")


def url(case):
    return f"/api/v1/refunds/{case.public_id}/messages/"


def test_thread_carries_on_from_before_the_case(api, buyer, seller, order):
    # given the buyer contacted the seller before filing
    message_post_on_order(order=order, author=buyer, body="Is it really blue?")
    case = file_refund(order, amount="20.00")

    # when the seller answers on the case
    response = api(seller).post(url(case), {"body": "It is teal."}, format="json")

    # then both parties see the whole thread, in order, and the buyer is told
    assert response.status_code == 201, response.json()
    assert response.json()["role"] == "seller"
    for user in (buyer, seller):
        thread = api(user).get(url(case)).json()
        assert [m["body"] for m in thread["results"]] == ["Is it really blue?", "It is teal."]
    event = Event.objects.filter(kind="message.posted", case_id=case.public_id).get()
    assert event.payload["notify"] == {"buyer": buyer.pk}


def test_staff_read_the_thread_but_do_not_write_on_it(api, staff, buyer, case):
    services.refund_message_post(case=case, author=buyer, body="Hello")

    assert api(staff).get(url(case)).json()["count"] == 1
    response = api(staff).post(url(case), {"body": "Staff here"}, format="json")
    assert response.status_code == 403


@pytest.mark.parametrize("who", ["other_buyer", "other_seller"])
def test_strangers_neither_read_nor_write(api, request, buyer, case, who):
    services.refund_message_post(case=case, author=buyer, body="Private")
    stranger = request.getfixturevalue(who)

    assert api(stranger).get(url(case)).status_code == 404
    assert api(stranger).post(url(case), {"body": "Hi"}, format="json").status_code == 404


def test_an_empty_message_is_refused(api, buyer, case):
    response = api(buyer).post(url(case), {"body": ""}, format="json")

    assert response.status_code == 400
    assert "body" in response.json()["error"]["fields"]


def test_message_count_shows_on_the_case(api, buyer, seller, case):
    services.refund_message_post(case=case, author=buyer, body="One")
    services.refund_message_post(case=case, author=seller, body="Two")

    assert api(buyer).get(f"/api/v1/refunds/{case.public_id}/").json()["messages"] == 2
