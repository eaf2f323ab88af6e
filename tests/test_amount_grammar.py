"""One amount grammar (docs/rules.md, Money) at every door an amount comes in by.

`^[0-9]+(\\.[0-9]{1,d})?$` with `d` the currency's decimals, ASCII digits only, for strings and
JSON numbers alike (a JSON number is judged by the text it was written with). Whatever is refused
is a 4xx in the API's envelope or a form error on a page, and nothing is written.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from api.toolkit import ExactJSONParser
from disputes.models import Dispute, DisputeState
from kernel.money import MoneyError, parse_amount
from orders.models import Event, Order, OrderItem
from payouts.models import GatewayRefund, Payout
from refunds.models import RefundCase, State
from tests.disputes.factories import (
    decided,
    dispute_for,
    open_body,
    rejected_case,
    with_statement,
)
from tests.orders.factories import ingest_body
from tests.portal.conftest import client_for, delivered_order, file_case
from tests.portal.helpers import visible_text

pytestmark = pytest.mark.django_db

# Written as strings: each is refused by the grammar (today's Decimal() read them all).
BAD_TEXTS = [
    pytest.param("1e1000000", id="overflowing-exponent"),
    pytest.param("1e999999999", id="huge-exponent"),
    pytest.param("２０.００", id="full-width-digits"),
    pytest.param("२०", id="devanagari-digits"),
    pytest.param("1_0", id="underscore"),
    pytest.param("+5", id="plus-sign"),
    pytest.param("1e2", id="exponent"),
    pytest.param("1E-2", id="negative-exponent"),
    pytest.param(" 20.00", id="leading-space"),
    pytest.param("20.", id="point-without-decimals"),
    pytest.param(".5", id="decimals-without-units"),
    pytest.param("Infinity", id="infinity"),
]
# Written as JSON numbers: judged as written, so `1.00E+2` is refused although it is 100.
BAD_NUMBERS = [
    pytest.param("1e2", id="json-exponent"),
    pytest.param("1E-2", id="json-negative-exponent"),
    pytest.param("1.00E+2", id="json-exponent-spelling-an-integer"),
    pytest.param("1e1000000", id="json-overflowing-exponent"),
    pytest.param("1e999999999", id="json-huge-exponent"),
]
NOT_AN_AMOUNT = "not an amount"


def written() -> tuple[int, ...]:
    return (
        Order.objects.count(),
        OrderItem.objects.count(),
        RefundCase.objects.count(),
        Dispute.objects.count(),
        Payout.objects.count(),
        GatewayRefund.objects.count(),
        Event.objects.count(),
    )


def post_json(client: Any, url: str, body: dict[str, Any], *, number: str | None = None) -> Any:
    """POST `body` as JSON; with `number`, the value "<number>" is written as that JSON literal."""
    raw = json.dumps(body)
    if number is not None:
        raw = raw.replace('"<number>"', number)
    return client.post(url, data=raw.encode(), content_type="application/json")


def assert_refused(response: Any, field: str | None, fragment: str = NOT_AN_AMOUNT) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if field is not None:
        assert fragment in " ".join(error["fields"][field]), error


# --- the grammar itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_the_grammar_refuses_every_other_spelling(text):
    with pytest.raises(MoneyError, match=NOT_AN_AMOUNT):
        parse_amount(text, "USD")


@pytest.mark.parametrize(
    ("text", "currency", "value"),
    [
        ("59.90", "USD", Decimal("59.90")),
        ("59.9", "USD", Decimal("59.9")),
        ("59", "USD", Decimal("59")),
        ("0059.90", "USD", Decimal("59.90")),
        ("1200", "JPY", Decimal("1200")),
        ("1.234", "KWD", Decimal("1.234")),
        (20, "USD", Decimal("20")),
    ],
)
def test_the_grammar_takes_ascii_digits_with_the_currencys_decimals(text, currency, value):
    assert parse_amount(text, currency) == value


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("1200.0", "JPY", "JPY amounts have at most 0 decimal places."),
        ("59.901", "USD", "USD amounts have at most 2 decimal places."),
        ("1.2345", "KWD", "KWD amounts have at most 3 decimal places."),
        ("1" + "0" * 12, "USD", "The amount is too large."),
        ("1" + "0" * 100_000, "USD", "The amount is too large."),
        ("-5", "USD", "The amount must be more than zero."),
    ],
)
def test_the_grammar_names_what_is_wrong(text, currency, message):
    with pytest.raises(MoneyError) as refused:
        parse_amount(text, currency)
    assert str(refused.value) == message


def test_the_example_in_the_refusal_has_the_currencys_own_decimals():
    for currency, example in (("USD", "1234.50"), ("JPY", "1234"), ("KWD", "1234.500")):
        with pytest.raises(MoneyError) as refused:
            parse_amount("1e2", currency)
        assert str(refused.value).endswith(f"like {example}.")


@pytest.mark.parametrize("literal", BAD_NUMBERS)
def test_a_json_number_is_judged_by_the_text_it_was_written_with(literal):
    parsed = ExactJSONParser().parse(io.BytesIO(f'{{"amount": {literal}}}'.encode()))
    with pytest.raises(MoneyError, match=NOT_AN_AMOUNT):
        parse_amount(parsed["amount"], "USD")


def test_a_stored_amount_is_judged_by_its_value():
    # given what the database hands back for 40.00 USD (three places for every currency)
    assert parse_amount(Decimal("40.000"), "USD") == Decimal("40.00")
    with pytest.raises(MoneyError, match="2 decimal places"):
        parse_amount(Decimal("40.001"), "USD")
    with pytest.raises(MoneyError, match="too large"):
        parse_amount(Decimal("1E+1000000"), "USD")


# --- the API --------------------------------------------------------------------------------------


@pytest.fixture
def requested(buyer, seller):
    return file_case(delivered_order(buyer, seller), buyer, amount="59.90")


def filing(order: Order, amount: Any) -> dict[str, Any]:
    return {"order": order.number, "reason": "changed_mind", "amount": amount}


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_api_refund_filing_refuses_the_amount_and_files_nothing(api, buyer, order, text):
    before = written()
    response = post_json(api(buyer), "/api/v1/refunds/", filing(order, text))
    assert_refused(response, "amount")
    assert written() == before


@pytest.mark.parametrize("literal", BAD_NUMBERS)
def test_api_refund_filing_refuses_a_json_number_as_written(api, buyer, order, literal):
    before = written()
    response = post_json(api(buyer), "/api/v1/refunds/", filing(order, "<number>"), number=literal)
    assert_refused(response, "amount")
    assert written() == before


def test_api_refund_filing_takes_a_plain_json_number(api, buyer, order):
    response = post_json(api(buyer), "/api/v1/refunds/", filing(order, "<number>"), number="20")
    assert response.status_code == 201, response.content
    assert RefundCase.objects.get().amount == Decimal("20.00")


def test_an_exponent_beyond_any_decimal_is_a_parse_error_not_a_500(api, buyer, order):
    before = written()
    response = post_json(
        api(buyer), "/api/v1/refunds/", filing(order, "<number>"), number="1e" + "9" * 30
    )
    assert_refused(response, None)
    assert written() == before


def assert_no_offer(case: RefundCase) -> None:
    case.refresh_from_db()
    assert (case.state, case.offer_amount) == (State.REQUESTED, None)


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_api_offer_refuses_the_amount_and_changes_nothing(api, seller, requested, text):
    before = written()
    url = f"/api/v1/refunds/{requested.public_id}/offer/"
    assert_refused(post_json(api(seller), url, {"amount": text}), "amount")
    assert written() == before
    assert_no_offer(requested)


@pytest.mark.parametrize("literal", BAD_NUMBERS)
def test_api_offer_refuses_a_json_number_as_written(api, seller, requested, literal):
    before = written()
    url = f"/api/v1/refunds/{requested.public_id}/offer/"
    response = post_json(api(seller), url, {"amount": "<number>"}, number=literal)
    assert_refused(response, "amount")
    assert written() == before
    assert_no_offer(requested)


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_api_dispute_refuses_the_desired_amount_and_opens_nothing(api, buyer, seller, text):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))
    before = written()
    body = open_body(case, desired_amount=text)
    response = post_json(api(buyer), "/api/v1/disputes/", body)
    assert_refused(response, "desired_amount")
    assert written() == before
    case.refresh_from_db()
    assert case.state == State.CLOSED


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_api_decision_refuses_the_amount_and_pays_nothing(api, buyer, seller, staff, text):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    before = written()
    body = {"outcome": "buyer", "amount": text, "rationale": "The photos show the crack."}
    response = post_json(api(staff), f"/api/v1/disputes/{dispute.public_id}/decide/", body)
    assert_refused(response, "amount")
    assert written() == before
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_api_ingest_refuses_the_total_and_the_unit_price(api, marketplace, text):
    before = written()
    line = {"sku": "MUG-1", "title": "Travel mug", "quantity": 1, "unit_price": text}
    response = post_json(api(marketplace), "/api/v1/orders/", ingest_body(total=text, items=[line]))
    assert_refused(response, "total")
    assert_refused(response, "items[0].unit_price")
    assert written() == before


@pytest.mark.parametrize("literal", BAD_NUMBERS)
def test_api_ingest_refuses_json_numbers_as_written(api, marketplace, literal):
    before = written()
    line = {"sku": "MUG-1", "title": "Travel mug", "quantity": 1, "unit_price": "<number>"}
    body = ingest_body(total="<number>", items=[line])
    response = post_json(api(marketplace), "/api/v1/orders/", body, number=literal)
    assert_refused(response, "total")
    assert_refused(response, "items[0].unit_price")
    assert written() == before


# --- the pages and the staff desk -----------------------------------------------------------


@pytest.mark.parametrize("text", BAD_TEXTS[:8])
def test_refund_form_refuses_the_amount_next_to_the_field(buyer, seller, text):
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    before = written()

    response = client.post(
        f"/orders/{order.number}/refund/details/", {"amount": text, "return_item": "no"}
    )

    assert response.status_code == 400
    assert NOT_AN_AMOUNT in visible_text(response)
    assert 'id="id_amount_error"' in response.content.decode()
    assert written() == before
    # and step 4 stays closed
    assert client.get(f"/orders/{order.number}/refund/review/").status_code == 302


@pytest.mark.parametrize("text", BAD_TEXTS[:8])
def test_offer_form_refuses_the_amount(seller, requested, text):
    before = written()
    response = client_for(seller).post(f"/refunds/{requested.public_id}/offer/", {"amount": text})
    assert response.status_code == 400
    assert NOT_AN_AMOUNT in visible_text(response)
    assert written() == before
    requested.refresh_from_db()
    assert requested.state == State.REQUESTED


@pytest.mark.parametrize("text", BAD_TEXTS[:8])
def test_dispute_form_refuses_the_desired_amount(buyer, seller, text):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))
    before = written()
    response = client_for(buyer).post(
        f"/refunds/{case.public_id}/dispute/",
        {
            "contact_name": "Bea Buyer",
            "contact_email": "bea@example.com",
            "statement": "It arrived broken.",
            "outcome": "partial",
            "desired_amount": text,
        },
    )
    assert response.status_code == 400
    assert NOT_AN_AMOUNT in visible_text(response)
    assert written() == before


@pytest.mark.parametrize("text", BAD_TEXTS[:8])
def test_desk_decision_form_refuses_the_amount(client, buyer, seller, staff, text):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    client.force_login(staff)
    before = written()
    response = client.post(
        reverse("admin:disputes_dispute_decide", args=[dispute.pk]),
        {"outcome": "buyer", "amount": text, "rationale": "The photos show the crack."},
    )
    assert response.status_code == 200
    assert NOT_AN_AMOUNT in visible_text(response)
    assert written() == before
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


# --- amounts in what people read ------------------------------------------------------------


def test_an_amount_above_the_refundable_is_named_with_the_currencys_decimals(api, buyer, order):
    # given a USD order whose stored total reads back as 59.900
    response = post_json(api(buyer), "/api/v1/refunds/", filing(order, "60"))
    error = response.json()["error"]
    assert error["code"] == "amount_exceeds_refundable"
    assert error["fields"]["amount"] == ["At most 59.90 USD."]


def test_a_payout_names_its_amount_with_the_currencys_decimals(buyer, seller, staff):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    decided(dispute, staff=staff, amount="40")
    payout = Payout.objects.get()
    assert str(payout).startswith("40.00 USD ")
