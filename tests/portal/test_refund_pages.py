"""The four-step refund request, the case page in each state, its actions, and the slip."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from orders.models import Message
from refunds import services as refund_services
from refunds.models import Evidence, RefundCase, State
from tests.orders.factories import OrderFactory
from tests.portal.conftest import client_for, delivered_order, file_case, png_upload
from tests.portal.helpers import login_redirect, queries_for, visible_text

pytestmark = pytest.mark.django_db


# --- step 2: the reason -------------------------------------------------------------------------


def test_step_2_says_which_windows_are_open_and_until_when(buyer, seller):
    order = delivered_order(buyer, seller, days_ago=1)
    text = visible_text(client_for(buyer).get(f"/orders/{order.number}/refund/"))
    assert "Changed my mind Open until" in text
    assert "Not as described Open until" in text
    assert "Item not received Closed on" in text  # delivered: never after delivery
    assert "Asia/Shanghai" in text and "Europe/Berlin" in text


def test_step_2_before_delivery_says_problem_reasons_open_on_delivery(order, buyer):
    text = visible_text(client_for(buyer).get(f"/orders/{order.number}/refund/"))
    assert "Arrived damaged Not yet Opens once the order has been delivered." in text


def test_step_2_refuses_a_closed_reason_next_to_the_field(buyer, seller):
    order = delivered_order(buyer, seller, days_ago=20)
    client = client_for(buyer)
    response = client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    assert response.status_code == 400
    text = visible_text(response)
    assert "The window for 'Arrived damaged' closed on" in text
    assert 'id="id_reason_error"' in response.content.decode()
    assert 'value="damaged" checked' in response.content.decode().replace(" disabled", "")


def test_the_seller_cannot_file_on_their_own_sale(order, seller):
    assert client_for(seller).get(f"/orders/{order.number}/refund/").status_code == 403


# --- step 3 and 4 -------------------------------------------------------------------------------


def test_step_3_keeps_what_was_typed_and_explains_the_amount_error(buyer, seller):
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    page = client.get(f"/orders/{order.number}/refund/details/")
    assert "at most 59.90" in visible_text(page)
    response = client.post(
        f"/orders/{order.number}/refund/details/",
        {
            "amount": "75.00",
            "return_item": "no",
            "description": "Cracked lid",
        },
    )
    assert response.status_code == 400
    text = visible_text(response)
    # the service's limit and the field help both in the currency's minor unit
    assert "At most 59.90 USD can be refunded on this order." in text
    assert "at most 59.90 (what" in text
    body = response.content.decode()
    assert 'value="75.00"' in body and "Cracked lid" in body
    assert 'aria-invalid="true"' in body
    assert not RefundCase.objects.exists()  # the dry run wrote nothing


def test_step_3_rejects_an_amount_with_too_many_decimals(buyer, seller):
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    response = client.post(
        f"/orders/{order.number}/refund/details/", {"amount": "1.234", "return_item": "no"}
    )
    assert "USD amounts have at most 2 decimal places." in visible_text(response)


def test_the_whole_request_with_evidence_in_four_steps(buyer, seller):
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    assert client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"}).status_code == 302
    item = order.items.get(sku="SKU-1")
    response = client.post(
        f"/orders/{order.number}/refund/details/",
        {
            "amount": "20.00",
            "return_item": "yes",
            "description": "One mug is cracked.",
            f"item_{item.pk}": "1",
            "evidence": [png_upload("crack.png")],
        },
    )
    assert response.status_code == 302, visible_text(response)
    review = visible_text(client.get(f"/orders/{order.number}/refund/review/"))
    for words in (
        "Arrived damaged",
        "20.00 USD",
        "1 × Travel mug",
        "Yes, I will send the item back",
        "One mug is cracked.",
        "crack.png",
        "Visa ••4242",
        "has until",
    ):
        assert words in review
    assert not RefundCase.objects.exists()

    response = client.post(f"/orders/{order.number}/refund/review/", follow=True)
    case = RefundCase.objects.get()
    assert (case.reason, case.amount, case.return_item) == ("damaged", 20, True)
    assert case.items.get().quantity == 1
    text = visible_text(response)
    assert "Refund request filed." in text and "Waiting for Sam's Shop" in text
    assert Evidence.objects.get(case=case).original_name == "crack.png"
    assert "crack.png" in text


def test_a_refused_file_is_named_at_step_three_and_the_good_one_is_kept(buyer, seller):
    # given a buyer at step 3 choosing a fake picture and a real one
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    fake = SimpleUploadedFile("notes.png", b"this is not a picture", content_type="image/png")

    # when the details are sent
    response = client.post(
        f"/orders/{order.number}/refund/details/",
        {
            "amount": "10.00",
            "return_item": "no",
            "evidence": [fake, png_upload("ok.png")],
        },
    )

    # then the fake is named with its reason at once, on the step that took it
    assert response.status_code == 400
    text = visible_text(response)
    assert "“notes.png” was not added: Only JPEG, PNG, WebP images and PDF documents" in text
    # and filing the request attaches only the real one
    response = client.post(f"/orders/{order.number}/refund/review/", follow=True)
    case = RefundCase.objects.get(order=order)
    assert [e.original_name for e in Evidence.objects.filter(case=case)] == ["ok.png"]
    assert "notes.png" not in visible_text(response)


def test_an_order_with_an_open_case_goes_to_the_case(requested_case, buyer):
    response = client_for(buyer).get(f"/orders/{requested_case.order.number}/refund/")
    assert response.status_code == 302
    assert response["Location"] == f"/refunds/{requested_case.public_id}/"


def test_review_without_the_earlier_steps_goes_back(order, buyer):
    response = client_for(buyer).get(f"/orders/{order.number}/refund/review/")
    assert response["Location"] == f"/orders/{order.number}/refund/"


# --- the case page --------------------------------------------------------------------------------


def test_case_page_needs_sign_in_and_is_404_for_others(requested_case, other_buyer, other_seller):
    url = f"/refunds/{requested_case.public_id}/"
    assert login_redirect(Client().get(url), url)
    for user in (other_buyer, other_seller):
        assert client_for(user).get(url).status_code == 404
        assert client_for(user).post(url + "accept/").status_code == 404
        assert client_for(user).post(url + "messages/", {"body": "x"}).status_code == 404
    assert client_for(other_buyer).get("/refunds/not-a-uuid/").status_code == 404


def test_requested_case_as_buyer_and_as_seller(requested_case, buyer, seller):
    url = f"/refunds/{requested_case.public_id}/"
    buyer_text = visible_text(client_for(buyer).get(url))
    assert "Waiting for Sam's Shop" in buyer_text
    assert "accepted automatically" in buyer_text and "Withdraw my request…" in buyer_text
    assert "Accept and refund" not in buyer_text
    assert "/sellers/sams-shop/" in client_for(buyer).get(url).content.decode()

    seller_text = visible_text(client_for(seller).get(url))
    assert "Your answer is needed" in seller_text
    assert "Accept and refund 59.90 USD" in seller_text
    assert "Send offer" in seller_text and "Reject request" in seller_text
    assert "America/Los_Angeles" in seller_text  # the seller's own zone


def test_seller_makes_an_offer_and_the_buyer_sees_it(requested_case, buyer, seller):
    url = f"/refunds/{requested_case.public_id}/"
    response = client_for(seller).post(url + "offer/", {"amount": "25.00"}, follow=True)
    assert "Offer sent to the buyer." in visible_text(response)
    text = visible_text(client_for(buyer).get(url))
    assert "Sam's Shop offers 25.00 USD instead of 59.90 USD" in text
    assert "Accept 25.00 USD" in text and "Decline the offer…" in text


def test_an_offer_not_below_the_ask_is_refused_next_to_the_amount(requested_case, seller):
    url = f"/refunds/{requested_case.public_id}/"
    response = client_for(seller).post(url + "offer/", {"amount": "59.90"})
    assert response.status_code == 400
    assert "A partial offer must be less than the amount asked for" in visible_text(response)
    assert 'id="id_amount_error"' in response.content.decode()


def test_rejecting_needs_a_reason(requested_case, seller):
    url = f"/refunds/{requested_case.public_id}/"
    response = client_for(seller).post(url + "reject/", {"reason": ""})
    assert response.status_code == 400
    assert "Tell the buyer why the request is rejected." in visible_text(response)
    response = client_for(seller).post(url + "reject/", {"reason": "Used item."}, follow=True)
    assert "Closed: rejected by the seller" in visible_text(response)


def test_the_buyer_may_not_press_the_sellers_buttons(requested_case, buyer):
    response = client_for(buyer).post(f"/refunds/{requested_case.public_id}/accept/")
    assert response.status_code == 400
    assert "Only the seller can do that on this case." in visible_text(response)
    requested_case.refresh_from_db()
    assert requested_case.state == State.REQUESTED


def test_rejected_case_offers_the_buyer_a_dispute_with_its_deadline(rejected_case, buyer, seller):
    url = f"/refunds/{rejected_case.public_id}/"
    text = visible_text(client_for(buyer).get(url))
    assert "Closed: rejected by the seller" in text
    assert "Open a dispute" in text and "The photos show normal wear." in text
    assert "Open a dispute" not in visible_text(client_for(seller).get(url))


def test_return_flow_rma_slip_ship_and_confirm(return_case, buyer, seller):
    url = f"/refunds/{return_case.public_id}/"
    text = visible_text(client_for(buyer).get(url))
    rma = return_case.return_number
    assert f"Send the item back with {rma} on the parcel" in text
    slip = visible_text(client_for(buyer).get(url + "slip/"))
    assert "Return slip" in slip and rma in slip and "Ship by" in slip

    response = client_for(buyer).post(url + "ship-return/", {"carrier": "", "tracking_number": ""})
    assert response.status_code == 400
    assert visible_text(response).count("This field is required.") == 2
    client_for(buyer).post(url + "ship-return/", {"carrier": "DHL", "tracking_number": "JD01"})

    seller_text = visible_text(client_for(seller).get(url))
    assert "Confirm the return when it arrives" in seller_text and "JD01" in seller_text
    response = client_for(seller).post(url + "confirm-return/", follow=True)
    text = visible_text(response)
    assert "Return confirmed; the refund is being paid." in text


def test_no_slip_before_a_return_number_is_issued(requested_case, buyer):
    assert client_for(buyer).get(f"/refunds/{requested_case.public_id}/slip/").status_code == 404


def test_messages_and_evidence_on_the_case(requested_case, buyer, seller):
    url = f"/refunds/{requested_case.public_id}/"
    client_for(buyer).post(url + "messages/", {"body": "Here is a photo."})
    response = client_for(buyer).post(
        url + "evidence/", {"file": png_upload("lid.png"), "kind": "photo"}, follow=True
    )
    assert "“lid.png” is attached." in visible_text(response)
    seller_page = client_for(seller).get(url)
    text = visible_text(seller_page)
    assert "Here is a photo." in text and "lid.png" in text
    evidence = Evidence.objects.get(case=requested_case)
    assert f"/files/evidence/{evidence.public_id}/" in seller_page.content.decode()


def test_a_refused_upload_says_why_next_to_the_file_field(requested_case, buyer):
    response = client_for(buyer).post(
        f"/refunds/{requested_case.public_id}/evidence/",
        {
            "file": SimpleUploadedFile("x.gif", b"GIF89a....", content_type="image/gif"),
            "kind": "photo",
        },
    )
    assert response.status_code == 400
    assert "Only JPEG, PNG, WebP images and PDF documents can be attached." in visible_text(
        response
    )
    assert 'id="id_file_error"' in response.content.decode()


def test_case_page_costs_the_same_queries_with_1_or_30_messages(requested_case, buyer, seller):
    url = f"/refunds/{requested_case.public_id}/"
    order = requested_case.order
    Message.objects.create(order=order, author=buyer, body="first")
    client = client_for(seller)
    one = queries_for(client, url)
    for i in range(29):
        Message.objects.create(order=order, author=seller if i % 2 else buyer, body=f"m{i}")
    assert queries_for(client, url) == one


def test_an_old_pending_step_deadline_still_shows_as_passed(buyer, seller):
    order = OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=timezone.now() - timedelta(days=3)
    )
    case = file_case(order, buyer, reason="changed_mind", amount="5.00")
    RefundCase.objects.filter(pk=case.pk).update(respond_by=timezone.now() - timedelta(hours=1))
    text = visible_text(client_for(seller).get(f"/refunds/{case.public_id}/"))
    assert "ended 1 h 0 min ago" in text or "ended 59 min ago" in text
    assert "Accept and refund" not in text  # past the deadline only the system may move it


def test_the_slip_lists_every_item_at_the_cost_of_one(buyer, seller):
    def slip_with(lines):  # a return case asking for `lines` different order lines
        order = delivered_order(
            buyer,
            seller,
            items=[(f"SKU-{i}", f"Item {i}", 1, Decimal("10.00")) for i in range(lines)],
        )
        items = [
            refund_services.ItemRequest(order_item_id=line.pk, quantity=1)
            for line in order.items.order_by("id")
        ]
        case = refund_services.refund_request(
            order=order,
            buyer=buyer,
            reason="not_as_described",
            amount=f"{10 * lines}.00",
            return_item=True,
            items=items,
            description="Broken.",
            now=timezone.now(),
        )
        refund_services.refund_accept(case=case, actor=seller)
        client, url = client_for(buyer), f"/refunds/{case.public_id}/slip/"
        return visible_text(client.get(url)), queries_for(client, url)

    one, one_queries = slip_with(1)
    three, three_queries = slip_with(3)

    assert "Item 0" in one
    assert all(f"Item {i}" in three for i in range(3))
    assert three_queries == one_queries
