"""Text fields (docs/rules.md, Text fields): single-line fields refuse CR, LF and every other
control character wherever input enters (API bodies, page forms, the admin); multi-line fields
keep CR and LF exactly as given. A refusal is a field error and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from disputes.models import Dispute, DisputeState
from orders.models import Event, Message, Order, Shop, User
from refunds import services as refund_services
from refunds.models import RefundCase, State
from tests.disputes.factories import dispute_for, open_body, rejected_case, with_statement
from tests.orders.factories import ingest_body
from tests.portal.conftest import client_for, delivered_order, file_case
from tests.portal.helpers import visible_text

pytestmark = pytest.mark.django_db

# Each is refused in a single-line field; the ends too (a field strips its ends, the rule
# judges what was sent).
NOT_ONE_LINE = [
    pytest.param("SF1\r\nBcc: x@example.com", id="crlf"),
    pytest.param("SF1\nSF2", id="lf"),
    pytest.param("SF1\rSF2", id="cr"),
    pytest.param("SF1\n", id="trailing-lf"),
    pytest.param("SF1\tSF2", id="tab"),
    pytest.param("SF\x1b[31m1", id="escape"),
    pytest.param("SF\x7f1", id="delete"),
    pytest.param("SF\x851", id="next-line-c1"),
    pytest.param("SF\u20281", id="line-separator"),
]
# Refused in multi-line text too: control characters that are not line breaks or tabs.
NOT_TEXT = [
    pytest.param("Hello\x1b[2J", id="escape"),
    pytest.param("Hello\x07", id="bell"),
    pytest.param("Hello\x0bthere", id="vertical-tab"),
]
MULTI_LINE = "Hello,\r\nthe lid is cracked.\nPhotos attached.\r\n\r\nBea"
ONE_LINE = "One line only"


def written() -> tuple[int, ...]:
    return (
        Order.objects.count(),
        User.objects.count(),
        Shop.objects.count(),
        RefundCase.objects.count(),
        Dispute.objects.count(),
        Message.objects.count(),
        Event.objects.count(),
    )


def assert_field_refused(response: Any, field: str, fragment: str = ONE_LINE) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert fragment in " ".join(error["fields"][field]), error


# --- the API: single-line fields ----------------------------------------------------------------


@pytest.mark.parametrize("text", NOT_ONE_LINE)
@pytest.mark.parametrize(
    ("field", "override"),
    [
        ("card_brand", lambda t: {"card_brand": t}),
        ("payment_reference", lambda t: {"payment_reference": t}),
        ("buyer.name", lambda t: {"buyer": {"email": "nina@example.com", "name": t}}),
        # the seller's name becomes the shop's name
        ("seller.name", lambda t: {"seller": {"email": "nils@example.com", "name": t}}),
        (
            "items[0].title",
            lambda t: {
                "items": [{"sku": "MUG-1", "title": t, "quantity": 1, "unit_price": "20.00"}]
            },
        ),
    ],
    ids=["card-brand", "payment-reference", "buyer-name", "shop-name", "item-title"],
)
def test_ingest_refuses_control_characters_in_single_line_fields(
    api, marketplace, field, override, text
):
    before = written()
    body = ingest_body(**override(text))
    response = api(marketplace).post("/api/v1/orders/", body, format="json")
    assert_field_refused(response, field)
    assert written() == before


@pytest.mark.parametrize("text", NOT_ONE_LINE)
@pytest.mark.parametrize("field", ["carrier", "tracking_number"])
def test_shipping_report_refuses_control_characters(api, marketplace, order, field, text):
    body = {"carrier": "SF Express", "tracking_number": "SF0001", field: text}
    before = written()
    response = api(marketplace).post(f"/api/v1/orders/{order.number}/ship/", body, format="json")
    assert_field_refused(response, field)
    assert written() == before
    order.refresh_from_db()
    assert (order.status, order.carrier, order.tracking_number) == ("paid", "", "")


@pytest.fixture
def return_case(buyer, seller):
    case = file_case(delivered_order(buyer, seller), buyer, return_item=True)
    return refund_services.refund_accept(case=case, actor=seller)


@pytest.mark.parametrize("field", ["carrier", "tracking_number"])
def test_api_return_shipment_refuses_a_line_break(api, buyer, return_case, field):
    body = {"carrier": "SF Express", "tracking_number": "SF0001", field: "SF1\r\nSF2"}
    url = f"/api/v1/refunds/{return_case.public_id}/ship-return/"
    assert_field_refused(api(buyer).post(url, body, format="json"), field)
    return_case.refresh_from_db()
    assert return_case.state == State.AWAITING_RETURN


@pytest.mark.parametrize("field", ["contact_name", "contact_phone"])
def test_api_dispute_refuses_a_line_break_in_the_contact(api, buyer, seller, field):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))
    body = open_body(case, **{field: "+49 30\n1234567"})
    before = written()
    assert_field_refused(api(buyer).post("/api/v1/disputes/", body, format="json"), field)
    assert written() == before


# --- the API: multi-line fields -----------------------------------------------------------------


def test_api_messages_keep_line_breaks_as_given(api, buyer, order):
    response = api(buyer).post(
        f"/api/v1/orders/{order.number}/messages/", {"body": MULTI_LINE}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Message.objects.get().body == MULTI_LINE


@pytest.mark.parametrize("text", NOT_TEXT)
def test_api_messages_refuse_other_control_characters(api, buyer, order, text):
    response = api(buyer).post(
        f"/api/v1/orders/{order.number}/messages/", {"body": text}, format="json"
    )
    assert_field_refused(response, "body", "Control characters")
    assert not Message.objects.exists()


def test_api_refund_description_keeps_line_breaks(api, buyer, order):
    body = {"order": order.number, "reason": "changed_mind", "amount": "20.00"}
    response = api(buyer).post(
        "/api/v1/refunds/", {**body, "description": MULTI_LINE}, format="json"
    )
    assert response.status_code == 201, response.content
    assert RefundCase.objects.get().description == MULTI_LINE


def test_api_reject_reason_keeps_line_breaks(api, buyer, seller, order):
    case = file_case(order, buyer, reason="changed_mind", amount="20.00")
    url = f"/api/v1/refunds/{case.public_id}/reject/"
    response = api(seller).post(url, {"reason": MULTI_LINE}, format="json")
    assert response.status_code == 200, response.content
    case.refresh_from_db()
    assert case.reject_reason == MULTI_LINE


def test_api_dispute_statement_and_decision_keep_line_breaks(api, buyer, seller, staff):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))
    body = {
        "refund": str(case.public_id),
        "statement": MULTI_LINE,
        "contact_name": "Bea Buyer",
        "contact_email": "bea@example.com",
        "desired_amount": "59.90",
    }
    response = api(buyer).post("/api/v1/disputes/", body, format="json")
    assert response.status_code == 201, response.content
    dispute = with_statement(Dispute.objects.get())
    assert dispute.statement == MULTI_LINE

    decision = {"outcome": "seller", "rationale": MULTI_LINE}
    response = api(staff).post(
        f"/api/v1/disputes/{dispute.public_id}/decide/", decision, format="json"
    )
    assert response.status_code == 200, response.content
    dispute.refresh_from_db()
    assert dispute.rationale == MULTI_LINE


@pytest.mark.parametrize("text", NOT_TEXT)
def test_api_decision_rationale_refuses_other_control_characters(api, buyer, seller, staff, text):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    before = written()
    decision = {"outcome": "seller", "rationale": text}
    response = api(staff).post(
        f"/api/v1/disputes/{dispute.public_id}/decide/", decision, format="json"
    )
    assert_field_refused(response, "rationale", "Control characters")
    assert written() == before
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


# --- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", NOT_ONE_LINE)
def test_return_shipment_form_refuses_control_characters(buyer, return_case, text):
    before = written()
    response = client_for(buyer).post(
        f"/refunds/{return_case.public_id}/ship-return/",
        {"carrier": "SF Express", "tracking_number": text},
    )
    assert response.status_code == 400
    assert ONE_LINE in visible_text(response)
    assert 'id="id_tracking_number_error"' in response.content.decode()
    assert written() == before
    return_case.refresh_from_db()
    assert (return_case.state, return_case.return_tracking_number) == (State.AWAITING_RETURN, "")


def test_dispute_form_refuses_a_line_break_in_the_name(buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))
    before = written()
    response = client_for(buyer).post(
        f"/refunds/{case.public_id}/dispute/",
        {
            "contact_name": "Bea\r\nBuyer",
            "contact_email": "bea@example.com",
            "statement": MULTI_LINE,
            "outcome": "full",
        },
    )
    assert response.status_code == 400
    assert ONE_LINE in visible_text(response)
    assert written() == before


def test_message_form_keeps_line_breaks_as_given(order, buyer):
    response = client_for(buyer).post(f"/orders/{order.number}/messages/", {"body": MULTI_LINE})
    assert response.status_code == 302
    assert Message.objects.get().body == MULTI_LINE


@pytest.mark.parametrize("text", NOT_TEXT)
def test_message_form_refuses_other_control_characters(order, buyer, text):
    response = client_for(buyer).post(f"/orders/{order.number}/messages/", {"body": text})
    assert response.status_code == 400
    assert "Control characters" in visible_text(response)
    assert not Message.objects.exists()


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def desk(client, staff):
    client.force_login(staff)
    return client


def test_admin_refuses_a_line_break_in_a_new_users_name(desk):
    before = written()
    response = desk.post(
        reverse("admin:orders_user_add"),
        {
            "email": "new.person@example.com",
            "name": "New\r\nPerson",
            "time_zone": "Europe/Paris",
            "usable_password": "false",
            "password1": "",
            "password2": "",
        },
    )
    assert response.status_code == 200
    assert ONE_LINE in visible_text(response)
    assert written() == before


def test_admin_refuses_a_line_break_in_a_shop_name(desk, seller):
    shop = seller.shops.get()
    response = desk.post(
        reverse("admin:orders_shop_change", args=[shop.pk]),
        {"slug": shop.slug, "name": "Sam's\nShop"},
    )
    assert response.status_code == 200
    assert ONE_LINE in visible_text(response)
    shop.refresh_from_db()
    assert shop.name == "Sam's Shop"


def test_desk_question_keeps_line_breaks_and_refuses_other_controls(desk, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    url = reverse("admin:disputes_dispute_request_info", args=[dispute.pk])

    response = desk.post(url, {"party": "seller", "question": "Which carrier?\x1b[2J"})
    assert response.status_code == 200
    assert "Control characters" in visible_text(response)
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN

    response = desk.post(url, {"party": "seller", "question": MULTI_LINE})
    assert response.status_code == 302
    dispute.refresh_from_db()
    assert dispute.info_question == MULTI_LINE


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (User, "name", "Bea\nBuyer"),
        (Shop, "name", "Sam's\rShop"),
        (Order, "tracking_number", "SF1\x00"),
        (Order, "card_brand", "Visa\t"),
        (RefundCase, "return_carrier", "SF\u2028Express"),
        (Dispute, "contact_name", "Bea\x1bBuyer"),
    ],
)
def test_model_fields_carry_the_rule_for_every_model_form(model, field, value):
    with pytest.raises(ValidationError):
        model._meta.get_field(field).run_validators(value)


def test_multi_line_model_fields_keep_line_breaks():
    for model, field in ((Message, "body"), (RefundCase, "description"), (Dispute, "rationale")):
        model._meta.get_field(field).run_validators(MULTI_LINE)
        with pytest.raises(ValidationError):
            model._meta.get_field(field).run_validators("Hello\x1b[2J")


def test_seller_names_from_the_feed_are_kept_on_one_line(api, marketplace):
    # given a well-formed order: the rule must not refuse ordinary names and punctuation
    body = ingest_body(seller={"email": "nils@example.com", "name": "Nils' Shop — Ünïcödé 商店"})
    response = api(marketplace).post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.content
    assert Shop.objects.get(owner__email="nils@example.com").name == "Nils' Shop — Ünïcödé 商店"
