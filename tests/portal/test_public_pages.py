"""The landing page, sign in / out / password reset, and the public reputation page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from disputes import services as dispute_services
from disputes.reputation import seller_reputation
from refunds import services as refund_services
from tests.orders.factories import OrderFactory
from tests.portal.conftest import client_for, delivered_order, file_case
from tests.portal.helpers import visible_text

pytestmark = pytest.mark.django_db


def test_home_explains_every_window_with_the_configured_numbers():
    text = visible_text(Client().get("/"))
    for words in (
        "Cancel within 24 hours",
        "until the end of day 7",
        "14 days from delivery",
        "The seller has 48 hours",
        "accepted automatically",
        "you have 48 hours to ask",
        "within 3–5 business days",
        "Asia/Shanghai",
    ):
        assert words in text


def test_home_reads_the_numbers_from_the_window_settings(settings):
    settings.REFUND_WINDOWS = {
        **settings.REFUND_WINDOWS,
        "instant_cancel": timedelta(hours=12),
        "guarantee_days": 21,
    }
    text = visible_text(Client().get("/"))
    assert "Cancel within 12 hours" in text
    assert "21 days from delivery" in text


def test_header_links_depend_on_who_is_signed_in(buyer, seller, staff):
    anonymous = visible_text(Client().get("/"))
    assert "Sign in" in anonymous and "My orders" not in anonymous

    as_buyer = client_for(buyer).get("/").content.decode()
    assert "My orders" in as_buyer and "Sign out" in as_buyer
    assert "Seller dashboard" not in as_buyer and ">Admin<" not in as_buyer

    assert "Seller dashboard" in client_for(seller).get("/").content.decode()
    assert ">Admin<" in client_for(staff).get("/").content.decode()


def test_page_has_lang_skip_link_and_labelled_login_fields():
    page = Client().get("/accounts/login/").content.decode()
    assert '<html lang="en">' in page
    assert 'href="#main"' in page and 'id="main"' in page
    assert '<label for="id_username">Email</label>' in page
    assert 'name="username"' in page and '<label for="id_password">' in page


def test_sign_in_with_the_email_and_sign_out(buyer):
    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": "buyer@example.com", "password": "correct horse battery staple"},
    )
    assert response.status_code == 302
    assert "My orders" in visible_text(client.get("/"))
    client.post("/accounts/logout/")
    assert "Sign in" in visible_text(client.get("/"))


def test_a_wrong_password_says_so_and_keeps_the_email(buyer):
    response = Client().post(
        "/accounts/login/", {"username": "buyer@example.com", "password": "nope"}
    )
    text = visible_text(response)
    assert "Please enter a correct email and password" in text
    assert 'value="buyer@example.com"' in response.content.decode()


def test_password_reset_sends_a_link_that_works(buyer):
    client = Client()
    response = client.post("/accounts/password_reset/", {"email": "buyer@example.com"})
    assert response.status_code == 302
    assert "Check your email" in visible_text(client.get(response["Location"]))
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Reset your RefundPortal password"
    link = next(line for line in message.body.splitlines() if "/accounts/reset/" in line)
    path = link.split("testserver", 1)[1]
    confirm = client.get(path, follow=True)
    assert "Choose a new password" in visible_text(confirm)


def test_reputation_page_is_public_and_counts_the_last_90_days(buyer, seller, other_buyer):
    shop = seller.shops.get()
    # 4 recent orders: one with a rejected request that went to a dispute, one accepted.
    rejected = file_case(delivered_order(buyer, seller), buyer)
    refund_services.refund_reject(case=rejected, actor=seller, reason="Used.")
    rejected.refresh_from_db()
    dispute_services.dispute_open(
        case=rejected,
        buyer=buyer,
        statement="Not used.",
        contact_name="Bea",
        contact_email="b@example.com",
        desired_amount="10.00",
    )
    accepted = file_case(delivered_order(buyer, seller), buyer, amount="10.00")
    refund_services.refund_accept(case=accepted, actor=seller)
    delivered_order(other_buyer, seller)
    delivered_order(other_buyer, seller)
    OrderFactory(buyer=buyer, shop=shop, placed_at=timezone.now() - timedelta(days=120))

    rep = seller_reputation(shop=shop)
    assert (rep.orders, rep.refund_requests, rep.disputes, rep.disputes_lost) == (4, 2, 1, 0)
    assert rep.refund_rate == 50 and rep.dispute_rate == 25
    assert rep.answered == 2 and rep.median_answer is not None

    text = visible_text(Client().get(f"/sellers/{shop.slug}/"))
    assert "Sam's Shop" in text
    assert "4 orders in the last 90 days" in text
    assert "50.0% refund rate" in text and "25.0% dispute rate" in text
    assert "median time to answer a refund request" in text


def test_reputation_of_a_shop_with_no_orders_shows_dashes(seller):
    text = visible_text(Client().get("/sellers/sams-shop/"))
    assert "0 orders in the last 90 days" in text and "— refund rate" in text


def test_reputation_of_an_unknown_shop_is_404(db):
    assert Client().get("/sellers/nobody/").status_code == 404


def test_reputation_costs_the_same_queries_with_more_orders(buyer, seller):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        file_case(delivered_order(buyer, seller), buyer)
    with CaptureQueriesContext(connection) as few:
        Client().get("/sellers/sams-shop/")
    for _ in range(9):
        case = file_case(delivered_order(buyer, seller), buyer)
        refund_services.refund_accept(case=case, actor=seller)
    with CaptureQueriesContext(connection) as many:
        Client().get("/sellers/sams-shop/")
    assert len(many.captured_queries) <= len(few.captured_queries) + 1  # +1: a second middle row
