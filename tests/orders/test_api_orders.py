"""Orders API (docs/rules.md, Orders; docs/api.md, Orders): ingestion, shipping events, list/detail,
cancellation, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from orders.models import Event, Message, Order, OrderItem, OrderStatus, Shop, User
from payouts.models import GatewayRefund, Payout
from tests.conftest import api_token_for
from tests.orders.factories import OrderFactory, UserFactory, delivered, ingest_body, shipped

CHINA = ZoneInfo("Asia/Shanghai")
# 1 Mar 2026 23:30 China time = 15:30 UTC; the instant cancellation closes 24 h later.
PLACED_AT = datetime(2026, 3, 1, 23, 30, tzinfo=CHINA)
CANCEL_UNTIL = PLACED_AT + timedelta(hours=24)
SECOND = timedelta(seconds=1)

LIST_URL = "/api/v1/orders/"


def url(name: str, number: str) -> str:
    return reverse(f"api:{name}", kwargs={"number": number})


def counts() -> tuple[int, ...]:
    return (
        Order.objects.count(),
        OrderItem.objects.count(),
        User.objects.count(),
        Shop.objects.count(),
        Event.objects.count(),
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


# --- ingestion ----------------------------------------------------------------------------------


def test_marketplace_pushes_an_order_with_its_token(marketplace):
    # given the marketplace's integration account and its API key, sent as a real header
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(marketplace)}")
    before = User.objects.count()

    # when it pushes a new order with two new accounts
    response = client.post(LIST_URL, ingest_body(), format="json")

    # then the order is created with both accounts and a shop for the seller
    assert response.status_code == 201, response.content
    data = response.json()
    assert response["Location"] == "/api/v1/orders/MP-2026-0001/"
    assert data["number"] == "MP-2026-0001"
    assert data["status"] == "paid"
    assert (data["total"], data["refundable"], data["currency"]) == ("59.90", "59.90", "USD")
    assert data["payment_method_label"] == "Visa ••4242"
    assert data["placed_at"].endswith("Z")
    assert data["buyer"] == {"name": "Nina New"}
    assert data["shop"]["name"] == "Nils Newshop"
    assert data["items"][0] == {
        "sku": "MUG-1",
        "title": "Travel mug",
        "quantity": 2,
        "unit_price": "20.00",
        "line_total": "40.00",
    }
    assert data["role"] == "marketplace"
    assert data["actions"] == {"ship": {}, "deliver": {}}
    assert User.objects.count() == before + 2
    order = Order.objects.select_related("buyer", "shop__owner").get(number="MP-2026-0001")
    assert order.buyer.email == "new.buyer@example.com"
    assert order.shop.owner.email == "new.seller@example.com"
    assert order.total == Decimal("59.90")
    event = Event.objects.get(order=order)
    assert (event.kind, event.actor_id) == ("order.received", marketplace.pk)


def test_staff_may_push_an_order_too(api, staff):
    response = api(staff).post(LIST_URL, ingest_body(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "staff"


def test_existing_accounts_are_reused_by_email(api, marketplace, buyer, seller):
    # given a buyer and a seller who already have accounts (the email in another case)
    before = counts()

    # when the marketplace pushes an order for them
    body = ingest_body(
        buyer={"email": "BUYER@example.com", "name": "Someone Else"},
        seller={"email": "seller@example.com", "name": "Sam"},
    )
    response = api(marketplace).post(LIST_URL, body, format="json")

    # then no account and no shop is created; the order belongs to them and the seller's shop
    assert response.status_code == 201, response.content
    assert User.objects.count() == before[2]
    assert Shop.objects.count() == before[3]
    order = Order.objects.get(number="MP-2026-0001")
    assert order.buyer_id == buyer.pk
    assert order.shop.slug == "sams-shop"
    assert order.return_policy == order.shop.return_policy


def test_yen_amounts_have_no_decimals(api, marketplace):
    body = ingest_body(
        currency="JPY",
        total="1200",
        card_brand="",
        card_last4="",
        items=[{"sku": "A", "title": "Chopsticks", "quantity": 2, "unit_price": "600"}],
    )
    response = api(marketplace).post(LIST_URL, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["total"] == "1200"
    assert response.json()["items"][0]["unit_price"] == "600"
    assert response.json()["payment_method_label"] == "Card"


def test_exact_json_numbers_are_accepted_as_written(api, marketplace):
    # given amounts sent as JSON numbers, not strings ("59.90" parsed as a float would be 59.9…)
    body = ingest_body()
    body["total"] = "__TOTAL__"
    raw = json.dumps(body).replace('"__TOTAL__"', "59.90")
    raw = raw.replace('"unit_price": "20.00"', '"unit_price": 20').replace(
        '"unit_price": "19.90"', '"unit_price": 19.9'
    )

    # when posted
    response = api(marketplace).post(LIST_URL, raw, content_type="application/json")

    # then they are read exactly
    assert response.status_code == 201, response.content
    assert Order.objects.get(number="MP-2026-0001").total == Decimal("59.90")


def _naive(dt: datetime) -> str:
    return dt.replace(tzinfo=None).isoformat()


BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, overrides, field expected in "fields", fragment of its message)
    ("missing number", {"number": None}, "number", "required"),
    ("bad number", {"number": "A/B"}, "number", "letters"),
    ("missing buyer", {"buyer": None}, "buyer", "required"),
    ("missing buyer email", {"buyer": {"name": "No Mail"}}, "buyer.email", "required"),
    ("bad seller email", {"seller": {"email": "nope"}}, "seller.email", "email"),
    (
        "same buyer and seller",
        {"seller": {"email": "NEW.buyer@example.com"}},
        "seller.email",
        "different",
    ),
    ("missing currency", {"currency": None}, "currency", "required"),
    ("unknown currency", {"currency": "ABC"}, "currency", "ISO 4217"),
    ("lower-case currency", {"currency": "usd"}, "currency", "ISO 4217"),
    ("missing total", {"total": None}, "total", "required"),
    ("negative total", {"total": "-59.90"}, "total", "more than zero"),
    ("zero total", {"total": "0.00"}, "total", "more than zero"),
    ("mis-scaled total", {"total": "59.901"}, "total", "2 decimal places"),
    ("not an amount", {"total": "59,90"}, "total", "not an amount"),
    ("boolean amount", {"total": True}, "total", "string"),
    ("total is not the sum of the lines", {"total": "60.00"}, "total", "sum"),
    (
        "negative line price",
        {"items": [{"sku": "A", "title": "A", "quantity": 1, "unit_price": "-1.00"}]},
        "items[0].unit_price",
        "more than zero",
    ),
    ("missing items", {"items": None}, "items", "required"),
    ("no items", {"items": []}, "items", "empty"),
    (
        "zero quantity",
        {"items": [{"sku": "A", "title": "A", "quantity": 0, "unit_price": "59.90"}]},
        "items[0].quantity",
        "greater",
    ),
    (
        "line without sku",
        {"items": [{"title": "A", "quantity": 1, "unit_price": "59.90"}]},
        "items[0].sku",
        "required",
    ),
    ("unknown payment method", {"payment_method": "cash"}, "payment_method", "valid choice"),
    ("missing payment reference", {"payment_reference": None}, "payment_reference", "required"),
    ("card_last4 not four digits", {"card_last4": "424"}, "card_last4", "four digits"),
    ("card_last4 with a letter", {"card_last4": "42a4"}, "card_last4", "four digits"),
    (
        "card details on a paypal payment",
        {"payment_method": "paypal"},
        "card_last4",
        "Only card payments",
    ),
    (
        "naive placed_at",
        {"placed_at": _naive(datetime(2026, 3, 1, 23, 30))},
        "placed_at",
        "time zone offset",
    ),
    ("naive deliver_by", {"deliver_by": "2026-12-24T12:00:00"}, "deliver_by", "time zone offset"),
    ("placed_at not a date", {"placed_at": "yesterday"}, "placed_at", "ISO 8601"),
    ("placed_at in the future", {"placed_at": "2099-01-01T00:00:00Z"}, "placed_at", "future"),
    ("deliver_by before placed_at", {"deliver_by": "2020-01-01T00:00:00Z"}, "deliver_by", "before"),
    ("misspelt field", {"card_last_4": "4242"}, "card_last_4", "Unknown field"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_bodies_are_refused_with_field_errors_and_nothing_written(
    api, marketplace, overrides, field, fragment
):
    # given a body with one thing wrong
    body = {k: v for k, v in ingest_body(**overrides).items() if v is not None}
    before = counts()

    # when the marketplace pushes it
    response = api(marketplace).post(LIST_URL, body, format="json")

    # then it is refused with the envelope naming the field, and nothing is written
    error = assert_error(response, 400, "validation_error")
    assert field in error["fields"], error
    assert fragment.lower() in " ".join(error["fields"][field]).lower(), error
    assert fragment.lower() in error["message"].lower()
    assert counts() == before


def test_yen_with_decimals_is_mis_scaled(api, marketplace):
    # given a JPY order with "100.5" yen
    body = ingest_body(
        currency="JPY",
        total="100.5",
        card_brand="",
        card_last4="",
        items=[{"sku": "A", "title": "A", "quantity": 1, "unit_price": "100.5"}],
    )
    before = counts()

    response = api(marketplace).post(LIST_URL, body, format="json")

    # then both amounts are refused: yen have no minor unit
    error = assert_error(response, 400, "validation_error")
    assert "JPY amounts have at most 0 decimal places." in error["fields"]["total"]
    assert "JPY amounts have at most 0 decimal places." in error["fields"]["items[0].unit_price"]
    assert counts() == before


def test_float_garbage_is_refused(api, marketplace):
    # given 0.1 + 0.2 computed in binary floating point and sent as a JSON number
    body = ingest_body(
        total=0.1 + 0.2,
        items=[
            {"sku": "A", "title": "A", "quantity": 1, "unit_price": 0.1},
            {"sku": "B", "title": "B", "quantity": 1, "unit_price": 0.2},
        ],
    )
    assert json.dumps(body["total"]) == "0.30000000000000004"
    before = counts()

    response = api(marketplace).post(LIST_URL, body, format="json")

    # then the amount is refused as mis-scaled rather than rounded
    error = assert_error(response, 400, "validation_error")
    assert error["fields"]["total"] == ["USD amounts have at most 2 decimal places."]
    assert counts() == before


def test_malformed_json_is_a_validation_error(api, marketplace):
    response = api(marketplace).post(LIST_URL, '{"number": ', content_type="application/json")
    assert_error(response, 400, "validation_error")


@pytest.mark.parametrize("reference", ["ch_feed_0001", "pi_3Mtw1x2eZvKYlo2C1"])
def test_with_stripe_a_card_order_names_a_payment_intent_or_a_charge(
    api, marketplace, settings, reference
):
    # given the Stripe gateway
    settings.PAYMENT_GATEWAY = "stripe"

    # when the marketplace pushes a card order paid by a PaymentIntent or a Charge
    response = api(marketplace).post(
        LIST_URL, ingest_body(payment_reference=reference), format="json"
    )

    # then it is taken
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("reference", ["txn_123", "re_123", "PI_123", "pm_card_visa", "fail-123"])
def test_with_stripe_a_card_order_with_another_reference_is_refused(
    api, marketplace, settings, reference
):
    # given the Stripe gateway
    settings.PAYMENT_GATEWAY = "stripe"
    before = counts()

    # when a card order names something Stripe could not refund
    response = api(marketplace).post(
        LIST_URL, ingest_body(payment_reference=reference), format="json"
    )

    # then it is a 400 naming the field, and nothing is written
    error = assert_error(response, 400, "validation_error")
    assert "PaymentIntent" in " ".join(error["fields"]["payment_reference"])
    assert counts() == before


def test_with_stripe_other_payment_methods_keep_their_own_references(api, marketplace, settings):
    # given the Stripe gateway
    settings.PAYMENT_GATEWAY = "stripe"

    # when a PayPal order comes in with PayPal's own reference
    body = ingest_body(
        payment_method="paypal", payment_reference="PAYID-123", card_brand="", card_last4=""
    )
    response = api(marketplace).post(LIST_URL, body, format="json")

    # then it is taken: its payout is not Stripe's
    assert response.status_code == 201, response.content


def test_with_the_fake_gateway_any_card_reference_is_taken(api, marketplace, settings):
    settings.PAYMENT_GATEWAY = "fake"
    response = api(marketplace).post(
        LIST_URL, ingest_body(payment_reference="fail-123"), format="json"
    )
    assert response.status_code == 201, response.content


def test_a_buyer_cannot_push_orders(api, buyer):
    before = counts()
    response = api(buyer).post(LIST_URL, ingest_body(), format="json")
    assert_error(response, 403, "permission_denied")
    assert counts() == before


def test_anonymous_ingestion_is_not_authenticated(api, db):
    response = api(None).post(LIST_URL, ingest_body(), format="json")
    assert_error(response, 401, "not_authenticated")


def test_a_wrong_token_is_not_authenticated(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.post(LIST_URL, ingest_body(), format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_the_same_number_again_is_a_duplicate(api, marketplace):
    # given an order already received
    assert api(marketplace).post(LIST_URL, ingest_body(), format="json").status_code == 201
    before = counts()

    # when the same number arrives again (even for other accounts)
    body = ingest_body(buyer={"email": "third@example.com", "name": "Third"})
    response = api(marketplace).post(LIST_URL, body, format="json")

    # then 409 duplicate, and the third account is not created
    assert_error(response, 409, "duplicate")
    assert counts() == before


# --- shipping and delivery events ---------------------------------------------------------------


def test_marketplace_ships_and_delivers(api, marketplace, order):
    # given an order placed two hours ago
    Order.objects.filter(pk=order.pk).update(placed_at=timezone.now() - timedelta(hours=2))
    client = api(marketplace)
    shipped_at = timezone.now() - timedelta(minutes=30)

    # when the marketplace reports shipping, then delivery
    response = client.post(
        url("order-ship", order.number),
        {
            "carrier": "SF Express",
            "tracking_number": "SF1234567890",
            "shipped_at": shipped_at.astimezone(CHINA).isoformat(),
        },
        format="json",
    )

    # then the order is shipped with the carrier's details, in UTC
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "shipped"
    assert (data["carrier"], data["tracking_number"]) == ("SF Express", "SF1234567890")
    assert data["shipped_at"].endswith("Z")
    assert datetime.fromisoformat(data["shipped_at"]) == shipped_at
    assert data["actions"] == {"deliver": {}}

    response = client.post(url("order-deliver", order.number), {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "delivered"
    assert response.json()["delivered_at"].endswith("Z")
    assert list(Event.objects.filter(order=order).values_list("kind", flat=True)) == [
        "order.shipped",
        "order.delivered",
    ]


def test_shipping_twice_is_an_invalid_transition(api, marketplace, order):
    shipped(order)
    response = api(marketplace).post(
        url("order-ship", order.number), {"carrier": "UPS", "tracking_number": "1Z"}, format="json"
    )
    assert_error(response, 409, "invalid_transition")


def test_shipping_needs_carrier_and_an_aware_time(api, marketplace, order):
    response = api(marketplace).post(
        url("order-ship", order.number), {"shipped_at": "2026-03-01T10:00:00"}, format="json"
    )
    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"carrier", "tracking_number", "shipped_at"}


def test_delivery_before_shipping_is_refused(api, marketplace, order):
    shipped(order)
    response = api(marketplace).post(
        url("order-deliver", order.number), {"delivered_at": "2020-01-01T00:00:00Z"}, format="json"
    )
    error = assert_error(response, 400, "validation_error")
    assert "delivered_at" in error["fields"]


@pytest.mark.parametrize("persona", ["buyer", "seller"])
def test_buyer_and_seller_cannot_report_shipping(api, order, persona, request):
    user = request.getfixturevalue(persona)
    response = api(user).post(
        url("order-ship", order.number), {"carrier": "UPS", "tracking_number": "1Z"}, format="json"
    )
    assert_error(response, 403, "permission_denied")
    response = api(user).post(url("order-deliver", order.number), {}, format="json")
    assert_error(response, 403, "permission_denied")


def test_shipping_an_unknown_order_is_not_found(api, marketplace, db):
    response = api(marketplace).post(
        url("order-ship", "NOPE-1"), {"carrier": "UPS", "tracking_number": "1Z"}, format="json"
    )
    assert_error(response, 404, "not_found")


# --- list and detail ----------------------------------------------------------------------------


def numbers(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["number"] for row in response.json()["results"]}


def test_each_party_lists_its_own_orders(
    api, buyer, seller, other_buyer, other_seller, staff, marketplace
):
    # given an order of buyer at seller's shop, one of other_buyer at other_seller's, and one
    # where the seller buys from the other seller
    mine = OrderFactory(buyer=buyer, shop=seller.shops.get())
    theirs = OrderFactory(buyer=other_buyer, shop=other_seller.shops.get())
    bought_by_seller = OrderFactory(buyer=seller, shop=other_seller.shops.get())

    # then everybody sees what concerns them; staff and the marketplace see everything
    assert numbers(api(buyer).get(LIST_URL)) == {mine.number}
    assert numbers(api(other_buyer).get(LIST_URL)) == {theirs.number}
    assert numbers(api(seller).get(LIST_URL)) == {mine.number, bought_by_seller.number}
    assert numbers(api(seller).get(LIST_URL, {"role": "seller"})) == {mine.number}
    assert numbers(api(seller).get(LIST_URL, {"role": "buyer"})) == {bought_by_seller.number}
    everything = {mine.number, theirs.number, bought_by_seller.number}
    assert numbers(api(staff).get(LIST_URL)) == everything
    assert numbers(api(marketplace).get(LIST_URL)) == everything


def test_list_filters_by_status_and_refuses_unknown_values(api, buyer, seller):
    paid = OrderFactory(buyer=buyer, shop=seller.shops.get())
    sent = shipped(OrderFactory(buyer=buyer, shop=seller.shops.get()))
    assert numbers(api(buyer).get(LIST_URL, {"status": "paid"})) == {paid.number}
    assert numbers(api(buyer).get(LIST_URL, {"status": "shipped"})) == {sent.number}
    error = assert_error(api(buyer).get(LIST_URL, {"status": "lost"}), 400, "validation_error")
    assert "status" in error["fields"]
    error = assert_error(api(buyer).get(LIST_URL, {"role": "boss"}), 400, "validation_error")
    assert "role" in error["fields"]


def test_list_rows_are_what_the_viewer_sees(api, buyer, seller):
    OrderFactory(buyer=buyer, shop=seller.shops.get())
    row = api(seller).get(LIST_URL).json()["results"][0]
    assert row["role"] == "seller"
    assert row["actions"] == {"cancel_out_of_stock": {}, "message": {}}
    assert row["buyer"] == {"name": "Bea Buyer"}
    assert "email" not in json.dumps(row)


@pytest.mark.parametrize("rows", [3])
def test_list_query_count_does_not_grow_with_orders(api, buyer, seller, rows):
    # given a buyer with N orders, then 3N
    def count_queries() -> int:
        client = api(buyer)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(LIST_URL)
        assert response.status_code == 200
        return len(ctx.captured_queries)

    shop = seller.shops.get()
    OrderFactory.create_batch(rows, buyer=buyer, shop=shop)
    at_n = count_queries()
    OrderFactory.create_batch(2 * rows, buyer=buyer, shop=shop)

    # then the list costs the same queries (page count, page, all their items, and one per
    # cancel hold: the open refund cases and the open chargebacks that hold any of them)
    assert count_queries() == at_n
    assert at_n <= 5
    assert len(api(buyer).get(LIST_URL).json()["results"]) == 3 * rows


def test_detail_query_count_does_not_grow_with_items(api, buyer, seller, django_assert_num_queries):
    small = OrderFactory(buyer=buyer, shop=seller.shops.get())
    lines = [(f"S{i}", "Thing", 1, Decimal("1.00")) for i in range(9)]
    big = OrderFactory(buyer=buyer, shop=seller.shops.get(), items=lines)
    client = api(buyer)
    # the order with its shop and buyer, its items, and whether a refund case or a chargeback
    # holds it
    with django_assert_num_queries(4):
        assert client.get(url("order-detail", small.number)).status_code == 200
    with django_assert_num_queries(4):
        assert len(client.get(url("order-detail", big.number)).json()["items"]) == 9


def test_buyer_detail_shows_the_cancel_deadline(api, buyer, order):
    # given an unshipped order placed 1 Mar 2026 23:30 China time, seen an hour later
    Order.objects.filter(pk=order.pk).update(placed_at=PLACED_AT)
    with time_machine.travel(PLACED_AT + timedelta(hours=1), tick=False):
        data = api(buyer).get(url("order-detail", order.number)).json()

    # then the buyer may cancel until 2 Mar 15:30 UTC (23:30 China time), and write the seller
    assert data["role"] == "buyer"
    assert data["placed_at"] == "2026-03-01T15:30:00Z"
    assert data["actions"] == {"cancel": {"until": "2026-03-02T15:30:00Z"}, "message": {}}
    assert data["deliver_by"] is None


@pytest.mark.parametrize("persona", ["other_buyer", "other_seller"])
@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "order-detail"),
        ("post", "order-cancel"),
        ("post", "order-cancel-out-of-stock"),
        ("get", "order-messages"),
        ("post", "order-messages"),
    ],
)
def test_strangers_get_not_found(api, order, persona, method, name, request):
    # given someone who is neither the buyer nor the seller of the order
    stranger = request.getfixturevalue(persona)

    # when they address it
    response = getattr(api(stranger), method)(
        url(name, order.number), {"body": "hi"}, format="json"
    )

    # then it does not exist for them, and nothing happened
    assert_error(response, 404, "not_found")
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert not Payout.objects.exists()
    assert not Message.objects.exists()


# --- instant cancellation -----------------------------------------------------------------------


@pytest.fixture
def placed_order(order):
    Order.objects.filter(pk=order.pk).update(placed_at=PLACED_AT)
    return Order.objects.get(pk=order.pk)


def test_buyer_cancels_one_second_before_the_window_closes(api, buyer, placed_order):
    # given an unshipped order placed 1 Mar 2026 23:30 China time
    # when the buyer cancels at 2 Mar 23:29:59 China time
    with time_machine.travel(CANCEL_UNTIL - SECOND, tick=False):
        response = api(buyer).post(url("order-cancel", placed_order.number))

    # then it is cancelled and the whole total goes back to the card
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["order"]["status"] == "cancelled"
    assert data["order"]["refundable"] == "0.00"
    assert data["order"]["actions"] == {"message": {}}
    assert data["order"]["cancelled_at"] == "2026-03-02T15:29:59Z"
    payout = data["payout"]
    assert (payout["amount"], payout["currency"]) == ("59.90", "USD")
    assert payout["payment_method_label"] == "Visa ••4242"
    assert payout["status"] == "pending"  # sent once the transaction commits
    assert Payout.objects.get().public_id.hex == payout["id"].replace("-", "")


def test_buyer_cannot_cancel_one_second_after_the_window(api, buyer, placed_order):
    # when the buyer tries at 2 Mar 23:30:01 China time
    with time_machine.travel(CANCEL_UNTIL + SECOND, tick=False):
        response = api(buyer).post(url("order-cancel", placed_order.number))
        detail = api(buyer).get(url("order-detail", placed_order.number)).json()

    # then the window is closed, the message names the deadline in both zones
    error = assert_error(response, 400, "window_closed")
    assert "2 Mar 2026, 23:30 Asia/Shanghai" in error["message"]
    assert "2 Mar 2026, 16:30 Europe/Berlin" in error["message"]
    assert "cancel" not in detail["actions"]
    assert Order.objects.get(pk=placed_order.pk).status == "paid"
    assert not Payout.objects.exists()


def test_cancellation_pays_the_full_amount_once(
    api, buyer, order, django_capture_on_commit_callbacks
):
    # when the buyer cancels and the transaction commits (the payout is sent on commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(buyer).post(url("order-cancel", order.number))
    assert response.status_code == 200, response.content

    # then the gateway refunded the full total once, to the order's payment reference
    refund = GatewayRefund.objects.get()
    assert refund.payment_reference == order.payment_reference
    assert (refund.amount, refund.currency, refund.calls) == (Decimal("59.90"), "USD", 1)
    payout = Payout.objects.get()
    assert payout.status == "succeeded"
    assert payout.idempotency_key == f"cancel:{order.number}"
    assert list(Event.objects.filter(order=order).values_list("kind", flat=True)) == [
        "payout.created",
        "order.cancelled",
        "payout.succeeded",
    ]
    # and a second request neither cancels nor pays again
    assert_error(api(buyer).post(url("order-cancel", order.number)), 409, "invalid_transition")
    assert GatewayRefund.objects.count() == 1


def test_cancel_after_shipping_is_an_invalid_transition(api, buyer, order):
    shipped(order)
    response = api(buyer).post(url("order-cancel", order.number))
    assert_error(response, 409, "invalid_transition")
    assert not Payout.objects.exists()


@pytest.mark.parametrize("persona", ["seller", "staff", "marketplace"])
def test_only_the_buyer_may_cancel(api, order, persona, request):
    # given someone who may see the order but is not its buyer
    response = api(request.getfixturevalue(persona)).post(url("order-cancel", order.number))
    assert_error(response, 403, "permission_denied")
    assert Order.objects.get(pk=order.pk).status == "paid"


# --- out of stock -------------------------------------------------------------------------------


def test_seller_cancels_out_of_stock(api, seller, order, django_capture_on_commit_callbacks):
    # given an unshipped order more than 24 h old (the buyer's window has no bearing here)
    Order.objects.filter(pk=order.pk).update(placed_at=timezone.now() - timedelta(days=3))

    with django_capture_on_commit_callbacks(execute=True):
        response = api(seller).post(url("order-cancel-out-of-stock", order.number))

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["order"]["status"] == "cancelled"
    assert data["payout"]["amount"] == "59.90"
    assert Order.objects.get(pk=order.pk).cancel_reason == "out_of_stock"
    assert GatewayRefund.objects.get().amount == Decimal("59.90")


def test_buyer_cannot_cancel_as_out_of_stock(api, buyer, order):
    response = api(buyer).post(url("order-cancel-out-of-stock", order.number))
    assert_error(response, 403, "permission_denied")


def test_out_of_stock_after_shipping_is_an_invalid_transition(api, seller, order):
    delivered(order)
    response = api(seller).post(url("order-cancel-out-of-stock", order.number))
    assert_error(response, 409, "invalid_transition")


# --- messages -----------------------------------------------------------------------------------


def test_buyer_and_seller_write_on_the_order(api, buyer, seller, order):
    # when the buyer writes and the seller answers
    first = api(buyer).post(
        url("order-messages", order.number), {"body": "  Is it blue?  "}, format="json"
    )
    second = api(seller).post(
        url("order-messages", order.number), {"body": "Yes, navy blue."}, format="json"
    )

    # then both are on the thread, in order, with who wrote them
    assert first.status_code == 201, first.content
    assert first.json()["body"] == "Is it blue?"
    assert first.json()["role"] == "buyer"
    assert second.json()["role"] == "seller"
    thread = api(buyer).get(url("order-messages", order.number)).json()["results"]
    assert [(m["role"], m["body"]) for m in thread] == [
        ("buyer", "Is it blue?"),
        ("seller", "Yes, navy blue."),
    ]
    assert thread[1]["author"] == {"name": "Sam Seller"}
    assert thread[0]["created_at"].endswith("Z")
    event = Event.objects.filter(kind="message.posted").first()
    assert event.payload["notify"] == {"seller": seller.pk}


def test_empty_message_is_refused(api, buyer, order):
    response = api(buyer).post(url("order-messages", order.number), {"body": ""}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert "body" in error["fields"]


def test_staff_reads_the_thread_but_does_not_write_on_it(api, staff, marketplace, order):
    assert api(staff).get(url("order-messages", order.number)).status_code == 200
    response = api(staff).post(url("order-messages", order.number), {"body": "hi"}, format="json")
    assert_error(response, 403, "permission_denied")
    assert_error(
        api(marketplace).get(url("order-messages", order.number)), 403, "permission_denied"
    )


def test_message_posting_is_rate_limited(api, buyer, order, monkeypatch):
    # given a limit of two messages a minute
    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"messages": "2/min"})
    client = api(buyer)
    for _ in range(2):
        assert (
            client.post(
                url("order-messages", order.number), {"body": "hello"}, format="json"
            ).status_code
            == 201
        )

    # when a third is posted
    response = client.post(url("order-messages", order.number), {"body": "hello?"}, format="json")

    # then it is refused with 429, and reading the thread is not limited
    assert_error(response, 429, "rate_limited")
    assert client.get(url("order-messages", order.number)).status_code == 200
    assert Message.objects.count() == 2
    cache.clear()


# --- schema -------------------------------------------------------------------------------------


def test_schema_documents_every_operation(db):
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    operations = {
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert {
        "orders_list",
        "orders_ingest",
        "orders_retrieve",
        "orders_ship",
        "orders_deliver",
        "orders_cancel",
        "orders_cancel_out_of_stock",
        "orders_messages_list",
        "orders_messages_create",
    } <= operations
    ingest = paths["/api/v1/orders/"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "OrderIngestInRequest"
    )
    assert "201" in ingest["responses"] and "409" in ingest["responses"]
    order_out = schema["components"]["schemas"]["OrderOut"]["properties"]
    assert {"refundable", "actions", "role", "payment_method_label"} <= set(order_out)


def test_order_timestamps_are_utc_even_for_a_viewer_far_away(api, db):
    # given a buyer in Los Angeles and an order placed at a known instant
    viewer = UserFactory(time_zone="America/Los_Angeles")
    order = OrderFactory(buyer=viewer, placed_at=datetime(2026, 7, 1, 12, tzinfo=UTC))
    data = api(viewer).get(url("order-detail", order.number)).json()
    assert data["placed_at"] == "2026-07-01T12:00:00Z"
    assert OrderStatus(data["status"]) == OrderStatus.PAID
