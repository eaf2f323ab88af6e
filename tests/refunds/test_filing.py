"""Filing a refund request through the API: amounts, items, one open case per order, who may."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from rest_framework.throttling import ScopedRateThrottle

from payouts.services import order_cancel_by_buyer
from refunds.models import RefundCase, RefundItem, State
from refunds.services import refund_withdraw
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

URL = "/api/v1/refunds/"


def body(order, **extra):
    return {
        "order": order.number,
        "reason": "changed_mind",
        "amount": "20.00",
        "description": "Wrong colour",
        "return_item": True,
        **extra,
    }


def test_buyer_files_a_request(api, buyer, order):
    # given a paid order of 59.90 USD
    # when its buyer asks for 20.00 back with the item going back
    response = api(buyer).post(URL, body(order), format="json")

    # then the case is created, requested, with the seller's 48 h running
    assert response.status_code == 201, response.json()
    data = response.json()
    case = RefundCase.objects.get()
    assert response["Location"] == f"/api/v1/refunds/{case.public_id}/"
    assert data["id"] == str(case.public_id)
    assert data["order"] == order.number
    assert data["state"] == "requested"
    assert data["amount"] == "20.00"
    assert data["refunded_amount"] == "0.00"
    assert data["currency"] == "USD"
    assert data["respond_by"].endswith("Z")
    assert data["return_by"] is None and data["confirm_by"] is None
    assert data["dispute_by"] is None and data["closed_reason"] is None
    # reserved for the return, but not issued (nor shown) before the seller accepts
    assert case.return_number and data["return_number"] is None
    assert [e["kind"] for e in data["timeline"]] == ["refund.requested"]
    assert data["role"] == "buyer"
    assert {a["action"] for a in data["actions"]} == {"withdraw"}


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("-5.00", "more than zero"),
        ("1.234", "at most 2 decimal"),
        ("abc", "not an amount"),
        ("NaN", "not an amount"),
    ],
)
def test_amount_must_be_positive_and_in_the_currencys_minor_unit(api, buyer, order, amount, why):
    # given a USD order
    # when the buyer asks for a malformed amount
    response = api(buyer).post(URL, body(order, amount=amount), format="json")

    # then it is a validation error on the amount, and nothing is filed
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert why in error["fields"]["amount"][0]
    assert not RefundCase.objects.exists()


def test_amount_above_refundable_is_refused(api, buyer, order):
    # given an order of 59.90
    # when the buyer asks for 59.91
    response = api(buyer).post(URL, body(order, amount="59.91"), format="json")

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"
    assert not RefundCase.objects.exists()


def test_amount_as_a_json_number_is_read_exactly(api, buyer, order):
    # given the full total sent as a JSON number
    raw = f'{{"order": "{order.number}", "reason": "changed_mind", "amount": 59.90}}'
    response = api(buyer).post(URL, data=raw.encode(), content_type="application/json")

    # then it is 59.90 exactly, not a binary float
    assert response.status_code == 201, response.json()
    assert RefundCase.objects.get().amount == Decimal("59.90")


def test_items_are_named_by_sku_and_their_value_is_the_default_amount(api, buyer, order):
    # given an order of 2 x SKU-1 at 20.00 and 1 x SKU-2 at 19.90
    # when the buyer asks for one mug back without an amount
    response = api(buyer).post(
        URL,
        {
            "order": order.number,
            "reason": "changed_mind",
            "return_item": True,
            "items": [{"sku": "SKU-1", "quantity": 1}],
        },
        format="json",
    )

    # then the amount is the line's value and the item is recorded
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["amount"] == "20.00"
    assert data["items"] == [
        {"sku": "SKU-1", "title": "Travel mug", "quantity": 1, "unit_price": "20.00"}
    ]
    assert RefundItem.objects.get().quantity == 1


@pytest.mark.parametrize(
    "item",
    [
        {"sku": "NOPE", "quantity": 1},
        {"sku": "SKU-1", "quantity": 3},
        {"sku": "SKU-1", "quantity": 0},
    ],
)
def test_items_must_come_from_the_order(api, buyer, order, item):
    response = api(buyer).post(URL, body(order, items=[item]), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "items" in next(iter(response.json()["error"]["fields"]))
    assert not RefundCase.objects.exists()


def test_unknown_field_is_refused(api, buyer, order):
    response = api(buyer).post(URL, body(order, ammount="1.00"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["ammount"] == ["Unknown field."]


def test_unknown_reason_is_refused(api, buyer, order):
    response = api(buyer).post(URL, body(order, reason="bored"), format="json")

    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]


def test_one_open_case_per_order(api, buyer, order):
    # given an open case on the order
    file_refund(order, amount="10.00")

    # when the buyer files another
    response = api(buyer).post(URL, body(order), format="json")

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    assert RefundCase.objects.count() == 1


def test_a_new_case_may_follow_a_closed_one(api, buyer, order):
    # given a case the buyer withdrew
    case = file_refund(order, amount="10.00")
    refund_withdraw(case=case, actor=buyer)

    # when the buyer files again inside the window
    response = api(buyer).post(URL, body(order), format="json")

    # then
    assert response.status_code == 201
    assert RefundCase.objects.filter(state=State.REQUESTED).count() == 1


def test_the_database_holds_one_open_case_per_order(buyer, order):
    # given an open case
    case = file_refund(order, amount="10.00")

    # when a second open case is written past the service (as a race would)
    with pytest.raises(IntegrityError), transaction.atomic():
        RefundCase.objects.create(
            order=order,
            reason="other",
            amount=Decimal("1.00"),
            currency="USD",
            respond_by=case.respond_by,
        )

    # then the partial unique index refused it
    assert RefundCase.objects.count() == 1


def test_seller_cannot_file_on_their_own_order(api, seller, order):
    response = api(seller).post(URL, body(order), format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_stranger_cannot_see_the_order(api, other_buyer, order):
    response = api(other_buyer).post(URL, body(order), format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_gets_401(api, order):
    response = api(None).post(URL, body(order), format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_cancelled_order_cannot_get_a_refund_request(api, buyer, order):
    # given an order the buyer cancelled (and was refunded in full)
    order_cancel_by_buyer(order=order, actor=buyer)

    # when they file a request
    response = api(buyer).post(URL, body(order), format="json")

    # then
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"


def test_filing_is_rate_limited(api, buyer, seller, monkeypatch):
    # given a filing rate of 2 an hour
    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"refund_filing": "2/hour"})
    orders = [OrderFactory(buyer=buyer, shop=seller.shops.get()) for _ in range(3)]

    # when the buyer files three times
    responses = [api(buyer).post(URL, body(o), format="json") for o in orders]
    cache.clear()

    # then the third is refused
    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[2].json()["error"]["code"] == "rate_limited"
    assert RefundCase.objects.count() == 2
