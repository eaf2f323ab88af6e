"""The case contract of docs/api.md (Refund cases): fields, money as strings, instants in UTC,
nulls, schema."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine

from refundportal.deadlines import enforce_all
from refunds import services
from tests.orders.factories import OrderFactory
from tests.refunds.factories import SECOND, file_refund

SPEC_FIELDS = {
    "id",
    "order",
    "state",
    "closed_reason",
    "reason",
    "amount",
    "refunded_amount",
    "return_number",
    "respond_by",
    "return_by",
    "confirm_by",
    "dispute_by",
    "timeline",
}


def detail(api, user, case):
    response = api(user).get(f"/api/v1/refunds/{case.public_id}/")
    assert response.status_code == 200, response.json()
    return response.json()


def test_detail_has_every_field_of_the_spec(api, buyer, order):
    case = file_refund(order, amount="20.00")

    data = detail(api, buyer, case)

    assert set(data) >= SPEC_FIELDS
    assert data["respond_by"] == case.respond_by.isoformat().replace("+00:00", "Z")


def test_deadlines_that_do_not_apply_are_null(api, buyer, seller, order):
    # given a case that went requested → awaiting_return → return_shipped
    case = file_refund(order, amount="20.00", return_item=True)
    requested = detail(api, buyer, case)
    services.refund_accept(case=case, actor=seller)
    awaiting = detail(api, buyer, case)
    services.refund_ship_return(case=case, actor=buyer, carrier="DHL", tracking_number="1")
    shipped = detail(api, seller, case)

    # then each deadline appears once its step began, and the running one is named
    assert (requested["return_by"], requested["confirm_by"], requested["dispute_by"]) == (
        None,
        None,
        None,
    )
    assert requested["deadline"]["party"] == "seller"
    assert awaiting["return_by"] is not None and awaiting["confirm_by"] is None
    assert awaiting["deadline"] == {"party": "buyer", "at": awaiting["return_by"]}
    assert shipped["confirm_by"] is not None and shipped["dispute_by"] is None
    assert shipped["deadline"] == {"party": "seller", "at": shipped["confirm_by"]}
    assert shipped["offer_by"] is None and shipped["offer_amount"] is None


def test_amounts_use_the_currencys_decimals(api, buyer, seller):
    # given a yen order
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        currency="JPY",
        items=[("SKU-J", "Teapot", 1, Decimal("1200"))],
    )

    # when the buyer files for 500 yen
    response = api(buyer).post(
        "/api/v1/refunds/",
        {"order": order.number, "reason": "changed_mind", "amount": "500"},
        format="json",
    )

    # then amounts have no decimals; a fraction of a yen is refused
    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == "500"
    assert response.json()["refunded_amount"] == "0"
    services.refund_withdraw(case=services.RefundCase.objects.get(), actor=buyer)
    refused = api(buyer).post(
        "/api/v1/refunds/",
        {"order": order.number, "reason": "changed_mind", "amount": "500.5"},
        format="json",
    )
    assert refused.status_code == 400


def test_instants_are_utc_whatever_the_viewers_zone(api, seller, order):
    case = file_refund(order, amount="20.00")

    data = detail(api, seller, case)  # the seller lives in Los Angeles

    for name in ("respond_by", "created_at"):
        assert data[name].endswith("Z"), data[name]
    assert data["timeline"][0]["at"].endswith("Z")


def test_timeline_names_actors_by_role_and_the_system(api, buyer, seller, order):
    # given a request the seller let lapse, swept one second after respond_by
    case = file_refund(order, amount="20.00")
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        enforce_all()

        # when the seller reads the case
        timeline = detail(api, seller, case)["timeline"]

    # then the buyer filed it and the system accepted it
    assert [(e["kind"], e["actor"]) for e in timeline[:2]] == [
        ("refund.requested", {"name": "Bea Buyer", "role": "buyer"}),
        ("refund.auto_accepted", None),
    ]


def test_list_filters_by_state_and_role(api, buyer, seller, other_buyer):
    # given the seller also buys from another shop
    mine = file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="5.00")
    from tests.orders.factories import ShopFactory

    bought = file_refund(
        OrderFactory(buyer=seller, shop=ShopFactory(owner=other_buyer)), amount="5.00"
    )
    services.refund_withdraw(case=bought, actor=seller)

    def ids(query):
        response = api(seller).get(f"/api/v1/refunds/{query}")
        assert response.status_code == 200
        return [r["id"] for r in response.json()["results"]]

    assert set(ids("")) == {str(mine.public_id), str(bought.public_id)}
    assert ids("?role=seller") == [str(mine.public_id)]
    assert ids("?role=buyer") == [str(bought.public_id)]
    assert ids("?state=closed") == [str(bought.public_id)]
    assert ids("?state=requested&role=buyer") == []
    page = api(seller).get("/api/v1/refunds/?limit=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1


@pytest.mark.parametrize(
    "operation",
    [
        "refunds_create",
        "refunds_list",
        "refunds_retrieve",
        "refunds_accept",
        "refunds_offer",
        "refunds_reject",
        "refunds_accept_offer",
        "refunds_decline_offer",
        "refunds_withdraw",
        "refunds_ship_return",
        "refunds_confirm_return",
        "refunds_messages_create",
        "refunds_evidence_create",
    ],
)
def test_every_operation_is_in_the_openapi_schema(operation, schema):
    assert operation in schema


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        document = SchemaGenerator().get_schema(request=None, public=True)
    return {
        op["operationId"]: op
        for path in document["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }


def test_schema_documents_the_error_envelope(schema):
    responses = schema["refunds_accept"]["responses"]
    assert {"200", "403", "404", "409"} <= set(responses)
