"""My orders, the order page (thread, cancel, out of stock) and the printable invoice."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from orders.models import Message, OrderStatus
from refunds import services as refund_services
from tests.orders.factories import OrderFactory
from tests.portal.conftest import client_for, delivered_order, file_case
from tests.portal.helpers import login_redirect, queries_for, visible_text

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/orders/",
        "/orders/ORD-1/",
        "/orders/ORD-1/invoice/",
        "/orders/ORD-1/refund/",
        "/seller/",
        "/seller/policy/",
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(url):
    assert login_redirect(Client().get(url), url)


def test_my_orders_lists_only_my_orders_with_status_and_refundable(buyer, seller, other_buyer):
    mine = OrderFactory(buyer=buyer, shop=seller.shops.get())
    theirs = OrderFactory(buyer=other_buyer, shop=seller.shops.get())
    text = visible_text(client_for(buyer).get("/orders/"))
    assert f"Order {mine.number}" in text and theirs.number not in text
    assert "Paid · not shipped" in text and "refundable 59.90 USD" in text
    assert "Visa ••4242" in text and "2 × Travel mug, 1 × Tea sampler" in text


def test_a_fresh_order_offers_instant_cancellation_with_its_deadline(buyer, seller):
    placed = timezone.now() - timedelta(hours=2)
    OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=placed)
    page = client_for(buyer).get("/orders/")
    text = visible_text(page)
    assert "Cancel for a full refund at once" in text
    assert re.search(r"\b2[12] h \d+ min left", text)  # the countdown: about 22 hours left
    # the exact time in the marketplace zone and in the buyer's own (Berlin)
    assert "Asia/Shanghai" in text and "Europe/Berlin" in text
    assert 'data-deadline="' in page.content.decode()
    assert "Request a refund" in text


def test_after_24_hours_the_cancel_offer_is_gone(buyer, seller):
    OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=timezone.now() - timedelta(hours=25)
    )
    text = visible_text(client_for(buyer).get("/orders/"))
    assert "Cancel for a full refund" not in text
    assert "Request a refund" in text


def test_an_order_with_an_open_case_links_the_case(requested_case, buyer):
    text = visible_text(client_for(buyer).get("/orders/"))
    assert "Refund requested — waiting for the seller's answer" in text
    assert (
        f"/refunds/{requested_case.public_id}/"
        in client_for(buyer).get("/orders/").content.decode()
    )
    assert "Request a refund" not in text


def test_a_rejected_case_offers_a_dispute_until_its_deadline(rejected_case, buyer):
    page = client_for(buyer).get("/orders/")
    assert "Open a dispute" in visible_text(page)
    assert f"/refunds/{rejected_case.public_id}/dispute/" in page.content.decode()


def test_seller_tab_shows_sold_orders_and_what_needs_an_answer(requested_case, seller, buyer):
    text = visible_text(client_for(seller).get("/orders/?as=seller"))
    assert requested_case.order.number in text
    assert "Refund requested — your answer is needed" in text
    assert "Bought by Bea Buyer" in text
    assert requested_case.order.number not in visible_text(client_for(seller).get("/orders/"))


def test_my_orders_costs_the_same_queries_with_5_or_50_orders(buyer, seller):
    shop = seller.shops.get()
    client = client_for(buyer)

    def add(n: int) -> None:
        for i in range(n):
            order = OrderFactory(buyer=buyer, shop=shop)
            if i % 3 == 0:
                file_case(order, buyer, reason="changed_mind", amount="5.00")

    add(5)
    few = queries_for(client, "/orders/")
    add(45)
    assert queries_for(client, "/orders/") == few
    assert queries_for(client_for(seller), "/orders/?as=seller") == few


def test_someone_elses_order_is_not_found(order, other_buyer, other_seller):
    for user in (other_buyer, other_seller):
        client = client_for(user)
        for url in (
            f"/orders/{order.number}/",
            f"/orders/{order.number}/invoice/",
            f"/orders/{order.number}/refund/",
        ):
            assert client.get(url).status_code == 404, url
        assert client.post(f"/orders/{order.number}/cancel/").status_code == 404
        assert client.post(f"/orders/{order.number}/messages/", {"body": "hi"}).status_code == 404


def test_order_page_shows_items_thread_and_the_reputation_link(order, buyer, seller):
    Message.objects.create(order=order, author=seller, body="Shipping tomorrow!")
    page = client_for(buyer).get(f"/orders/{order.number}/")
    text = visible_text(page)
    assert "Travel mug" in text and "Total paid 59.90 USD" in text
    assert "Contact the seller first" in text
    assert "Shipping tomorrow!" in text and "Sam Seller (seller)" in text
    assert "/sellers/sams-shop/" in page.content.decode()


def test_buyer_contacts_the_seller_from_the_order_page(order, buyer):
    client = client_for(buyer)
    response = client.post(
        f"/orders/{order.number}/messages/", {"body": "Is it in stock?"}, follow=True
    )
    text = visible_text(response)
    assert "Message sent." in text and "Is it in stock?" in text


def test_an_empty_message_is_an_error_next_to_the_field(order, buyer):
    response = client_for(buyer).post(f"/orders/{order.number}/messages/", {"body": "  "})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_body_error"' in page and 'aria-invalid="true"' in page


def test_buyer_cancels_within_24_hours(order, buyer):
    client = client_for(buyer)
    page = client.get(f"/orders/{order.number}/")
    assert "Cancel order…" in visible_text(page)
    response = client.post(f"/orders/{order.number}/cancel/", follow=True)
    text = visible_text(response)
    assert f"Order {order.number} is cancelled. 59.90 USD goes back to Visa ••4242." in text
    assert "Cancelled" in text
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED


def test_cancelling_after_24_hours_explains_why_not(buyer, seller):
    order = OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=timezone.now() - timedelta(hours=30)
    )
    response = client_for(buyer).post(f"/orders/{order.number}/cancel/")
    assert response.status_code == 400
    assert "Instant cancellation closed at" in visible_text(response)


def test_the_seller_cancels_an_unshipped_order_as_out_of_stock(order, seller, buyer):
    client = client_for(seller)
    assert "Cancel as out of stock…" in visible_text(client.get(f"/orders/{order.number}/"))
    response = client.post(f"/orders/{order.number}/cancel-out-of-stock/", follow=True)
    assert "cancelled as out of stock" in visible_text(response)
    # the buyer may not use the seller's button
    other = delivered_order(buyer, seller)
    assert client_for(buyer).post(f"/orders/{other.number}/cancel-out-of-stock/").status_code == 400


def test_invoice_shows_every_return_number(buyer, seller):
    order = delivered_order(buyer, seller)
    first = file_case(order, buyer, return_item=True, amount="20.00")
    first = refund_services.refund_accept(case=first, actor=seller)
    refund_services.refund_withdraw(case=first, actor=buyer)
    second = file_case(order, buyer, return_item=True, amount="19.90", reason="damaged")
    second = refund_services.refund_accept(case=second, actor=seller)
    text = visible_text(client_for(buyer).get(f"/orders/{order.number}/invoice/"))
    assert "Invoice" in text and order.number in text
    assert first.return_number in text and second.return_number in text
    page = client_for(seller).get(f"/orders/{order.number}/invoice/").content.decode()
    assert second.return_number in page and "@media print" not in page  # print CSS is static


def test_policy_page_saves_a_number_and_unit(seller):
    client = client_for(seller)
    assert "15 days after delivery" in visible_text(client.get("/seller/policy/"))
    response = client.post("/seller/policy/", {"number": "36", "unit": "hours"}, follow=True)
    assert "Return policy saved: 1 day 12 hours after delivery" in visible_text(response)
    seller.shops.get().refresh_from_db()
    assert seller.shops.get().return_policy == timedelta(hours=36)


def test_policy_out_of_range_is_an_error_next_to_the_number(seller):
    response = client_for(seller).post("/seller/policy/", {"number": "31", "unit": "days"})
    assert response.status_code == 400
    text = visible_text(response)
    assert "between 15 minutes and 30 days" in text
    assert 'value="31"' in response.content.decode()


def test_policy_page_is_404_for_an_account_without_a_shop(buyer):
    assert client_for(buyer).get("/seller/policy/").status_code == 404
