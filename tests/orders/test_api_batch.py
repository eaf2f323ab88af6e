"""Batch ingest (docs/api.md, Batch ingest): orders and shipping/delivery events in one request,
each item answered as its single endpoint would answer it alone."""

from __future__ import annotations

import json
from datetime import timedelta
from operator import attrgetter
from typing import Any

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import ApiScope, Event, Order, OrderItem, OrderStatus, Shop, User
from tests.conftest import api_token_for
from tests.orders.factories import OrderFactory, ingest_body, shipped

LIST_URL = "/api/v1/orders/"
BATCH_URL = "/api/v1/orders/batch/"
EVENTS_URL = "/api/v1/orders/events/batch/"


def body(n: int, **overrides: Any) -> dict[str, Any]:
    """The n-th order of a feed: its own number and buyer, one seller per ten orders."""
    fields: dict[str, Any] = {
        "number": f"MP-B-{n:04d}",
        "buyer": {"email": f"buyer{n}@example.com", "name": f"Buyer {n}"},
        "seller": {"email": f"seller{n // 10}@example.com", "name": f"Seller {n // 10}"},
    }
    return ingest_body(**(fields | overrides))


def post_batch(client: APIClient, orders: list[Any]) -> Any:
    response = client.post(BATCH_URL, {"orders": orders}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Order, OrderItem, User, Shop, Event))


# --- orders -------------------------------------------------------------------------------------


def test_each_order_is_answered_as_the_single_endpoint_would(api, marketplace, buyer):
    # given an order already received, and a feed mixing good and bad orders
    client = api(marketplace)
    assert client.post(LIST_URL, body(0), format="json").status_code == 201
    bad_total = body(2, total="60.00")
    bad_fields = {**body(3, currency="ABC"), "card_last_4": "4242"}
    same_party = body(6, seller={"email": "BUYER6@example.com"})
    orders = [
        body(1),  # new
        bad_total,  # total is not the sum of its lines
        bad_fields,  # unknown currency and a misspelt field
        body(0),  # already received
        body(4),  # new
        body(4),  # the same number again, in this batch
        same_party,
        "not an order",
    ]

    # when the marketplace pushes them in one batch
    results = post_batch(client, orders)

    # then every order has its own result, in order, with the single endpoint's status and error
    assert [r["index"] for r in results] == list(range(len(orders)))
    assert [r["status"] for r in results] == [201, 400, 400, 409, 201, 409, 400, 400]
    assert results[0] == {"index": 0, "status": 201, "number": "MP-B-0001"}
    assert results[4]["number"] == "MP-B-0004"
    for index in (1, 2, 6):
        with transaction.atomic():
            single = client.post(LIST_URL, orders[index], format="json")
            transaction.set_rollback(True)
        assert single.status_code == results[index]["status"]
        assert results[index]["error"] == single.json()["error"]
    assert results[3]["error"]["code"] == results[5]["error"]["code"] == "duplicate"
    assert results[3]["error"]["message"] == "Order MP-B-0000 was already received."
    assert set(results[2]["error"]["fields"]) == {"currency", "card_last_4"}
    assert results[7]["error"]["code"] == "validation_error"
    # and only the good ones were written, each with its audit event by the marketplace
    written = Order.objects.filter(number__startswith="MP-B-").values_list("number", flat=True)
    assert sorted(written) == ["MP-B-0000", "MP-B-0001", "MP-B-0004"]
    events = Event.objects.filter(
        kind="order.received", order__number__in=["MP-B-0001", "MP-B-0004"]
    )
    assert sorted(e.actor_id for e in events) == [marketplace.pk, marketplace.pk]


@pytest.mark.parametrize("reference", ["txn_123", "fail-123"])
def test_with_stripe_a_card_order_without_a_payment_intent_is_refused_alone(
    api, marketplace, settings, reference
):
    # given the Stripe gateway
    settings.PAYMENT_GATEWAY = "stripe"

    # when a batch holds a card order naming something Stripe could not refund, and a good one
    results = post_batch(
        api(marketplace), [body(1, payment_reference=reference), body(2, payment_reference="pi_1")]
    )

    # then that order is a 400 naming the field, and the other is taken
    assert results[0]["status"] == 400
    assert results[0]["error"]["code"] == "validation_error"
    assert "PaymentIntent" in " ".join(results[0]["error"]["fields"]["payment_reference"])
    assert results[1]["status"] == 201
    assert not Order.objects.filter(number="MP-B-0001").exists()


def _snapshot() -> dict[str, Any]:
    """Everything an ingest writes, without ids and timestamps."""
    drop = {"id", "created_at", "updated_at", "public_id", "password", "last_login"}
    drop |= {"buyer", "shop", "order", "owner"}  # ids: compared by email, slug, number instead

    def rows(qs: Any, *fields: str) -> list[dict[str, Any]]:
        return sorted(
            (
                {k: str(v) for k, v in model_to_dict(o).items() if k not in drop}
                | {f: str(attrgetter(f)(o)) for f in fields}
                for o in qs
            ),
            key=repr,
        )

    return {
        "orders": rows(
            Order.objects.select_related("buyer", "shop"), "buyer.email", "shop.slug", "status"
        ),
        "items": rows(OrderItem.objects.all(), "order.number"),
        "users": rows(User.objects.exclude(email__endswith="@portal.test")),
        "shops": rows(Shop.objects.select_related("owner"), "owner.email"),
        "events": sorted(
            (e.kind, e.order.number, e.actor_id, e.to_state, json.dumps(e.payload, sort_keys=True))
            for e in Event.objects.select_related("order")
        ),
    }


def test_a_batch_writes_exactly_what_the_single_endpoint_writes(api, marketplace, seller):
    # given a feed with new and known accounts, sellers whose shop names collide, and a yen order
    orders = [
        body(1),
        body(2, seller={"email": "seller@example.com", "name": "Sam"}),  # has a shop already
        body(3, seller={"email": "a@one.example", "name": "Twin Shop"}),
        body(4, seller={"email": "b@two.example", "name": "Twin Shop"}),  # same slug
        body(
            11,
            currency="JPY",
            total="1200",
            card_brand="",
            card_last4="",
            items=[{"sku": "A", "title": "Chopsticks", "quantity": 2, "unit_price": "600"}],
        ),
        body(12, buyer={"email": "NEW@Example.com", "name": ""}),
    ]
    client = api(marketplace)

    # when they are pushed one by one (then rolled back), and then in one batch
    with transaction.atomic():
        for order in orders:
            assert client.post(LIST_URL, order, format="json").status_code == 201
        one_by_one = _snapshot()
        transaction.set_rollback(True)
    results = post_batch(client, orders)

    # then the rows written are the same
    assert [r["status"] for r in results] == [201] * len(orders)
    assert _snapshot() == one_by_one
    assert Shop.objects.filter(name="Twin Shop").count() == 2


def _queries_for(client: APIClient, first: int, n: int) -> int:
    orders = [body(i) for i in range(first, first + n)]
    with CaptureQueriesContext(connection) as ctx:
        results = post_batch(client, orders)
    assert all(r["status"] == 201 for r in results)
    return len(ctx.captured_queries)


def test_the_queries_of_a_batch_do_not_grow_with_its_orders(api, marketplace):
    # given the marketplace's client (its first write is done, so both batches start alike)
    client = api(marketplace)
    _queries_for(client, 900, 1)

    # when it pushes 10 orders (1 new seller) and then 30 (3 new sellers)
    few = _queries_for(client, 0, 10)
    many = _queries_for(client, 100, 30)

    # then both take the same number of queries
    assert few == many
    assert many <= 20


def test_only_staff_and_the_marketplace_push_batches(api, buyer, seller, staff, marketplace):
    before = counts()
    for user in (buyer, seller):
        for url, key in ((BATCH_URL, "orders"), (EVENTS_URL, "events")):
            response = api(user).post(url, {key: [body(1)]}, format="json")
            assert response.status_code == 403, response.content
            assert response.json()["error"]["code"] == "permission_denied"
    assert APIClient().post(BATCH_URL, {"orders": [body(1)]}, format="json").status_code == 401
    assert counts() == before
    # a marketplace key without the marketplace scope may read, not push
    client = APIClient()
    key = api_token_for(marketplace, scopes=[ApiScope.READ])
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post(BATCH_URL, {"orders": [body(1)]}, format="json").status_code == 403
    # staff may
    assert post_batch(api(staff), [body(1)])[0]["status"] == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"orders": [body(i) for i in range(501)]}, "orders"),
        ({"orders": []}, "orders"),
        ({"orders": body(1)}, "orders"),
        ({}, "orders"),
        ({"orders": [body(1)], "extra": 1}, "extra"),
    ],
    ids=["501 orders", "none", "not a list", "no orders key", "unknown key"],
)
def test_a_malformed_batch_is_refused_whole(api, marketplace, payload, field):
    before = counts()
    response = api(marketplace).post(BATCH_URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert counts() == before


def test_500_orders_fit_a_batch_beyond_the_single_body_limit(api, marketplace, settings):
    # given the single endpoint's body limit, smaller than 500 orders
    raw = json.dumps({"orders": [body(i) for i in range(500)]})
    settings.API_MAX_BODY_BYTES = len(raw) // 10
    client = api(marketplace)

    # when 500 orders are pushed in one batch
    response = client.post(BATCH_URL, raw, content_type="application/json")

    # then all are taken; the single endpoint would have refused a body that size
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == [201] * 500
    assert client.post(LIST_URL, raw, content_type="application/json").status_code == 413


def test_a_batch_over_its_own_body_limit_is_413(api, marketplace, settings):
    raw = json.dumps({"orders": [body(i) for i in range(20)]})
    settings.API_MAX_BATCH_BODY_BYTES = len(raw) - 1
    before = counts()
    response = api(marketplace).post(BATCH_URL, raw, content_type="application/json")
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "payload_too_large"
    assert counts() == before


# --- shipping and delivery events ---------------------------------------------------------------


def test_each_event_is_answered_as_ship_and_deliver_would(api, marketplace, buyer, seller):
    # given a paid order, an order already shipped, and a paid order
    now = timezone.now()
    shop, placed_at = seller.shops.first(), now - timedelta(hours=2)
    paid = OrderFactory(buyer=buyer, shop=shop, placed_at=placed_at)
    sent = shipped(OrderFactory(buyer=buyer, shop=shop, placed_at=placed_at))
    other = OrderFactory(buyer=buyer, shop=shop, placed_at=placed_at)
    at = (now - timedelta(minutes=30)).isoformat()
    events = [
        {
            "number": paid.number,
            "type": "shipped",
            "carrier": "DHL",
            "tracking_number": "T1",
            "at": at,
        },
        {"number": paid.number, "type": "delivered", "at": now.isoformat()},
        {"number": sent.number, "type": "shipped", "carrier": "DHL", "tracking_number": "T2"},
        {"number": "NOPE-1", "type": "delivered"},
        {"number": other.number, "type": "shipped", "carrier": "DHL"},
        {"number": other.number, "type": "delivered", "carrier": "DHL"},
        {"number": other.number, "type": "returned"},
        {
            "number": other.number,
            "type": "shipped",
            "carrier": "UPS",
            "tracking_number": "T3",
            "at": "2099-01-01T00:00:00Z",
        },
    ]

    # when the marketplace pushes them in one batch
    response = api(marketplace).post(EVENTS_URL, {"events": events}, format="json")

    # then each is applied in order or refused alone with its single endpoint's code
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 200, 409, 404, 400, 400, 400, 400], results
    assert results[0] == {"index": 0, "status": 200, "number": paid.number}
    assert results[2]["error"]["code"] == "invalid_transition"
    assert results[3]["error"]["code"] == "not_found"
    assert "tracking_number" in results[4]["error"]["fields"]
    assert "carrier" in results[5]["error"]["fields"]
    assert "type" in results[6]["error"]["fields"]
    assert "at" in results[7]["error"]["fields"]
    paid.refresh_from_db()
    assert (paid.status, paid.carrier, paid.tracking_number) == (OrderStatus.DELIVERED, "DHL", "T1")
    other.refresh_from_db()
    assert other.status == OrderStatus.PAID
    kinds = list(Event.objects.filter(order=paid).values_list("kind", "actor_id"))
    assert ("order.shipped", marketplace.pk) in kinds
    assert ("order.delivered", marketplace.pk) in kinds


def test_the_schema_documents_both_batches():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    orders = schema["paths"]["/api/v1/orders/batch/"]["post"]
    events = schema["paths"]["/api/v1/orders/events/batch/"]["post"]
    assert orders["operationId"] == "orders_ingest_batch"
    assert events["operationId"] == "orders_events_batch"
    assert "200" in orders["responses"] and "413" in orders["responses"]
