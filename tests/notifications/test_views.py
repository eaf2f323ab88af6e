"""The in-portal notices page, marking read, the header count and the staff preview."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications.catalog import told_kinds
from notifications.models import Notification
from notifications.selectors import notification_unread_count
from notifications.services import notifications_fan_out
from tests.notifications.conftest import dispatch, record
from tests.orders.factories import OrderFactory

LIST = "/notifications/"


def notices_for(buyer, seller, n: int, *, sent: bool = False) -> list[Notification]:
    """`n` notices to the buyer (and as many to the seller), on orders of the seller's shop."""
    for _ in range(n):
        order = OrderFactory(buyer=buyer, shop=seller.shops.get())
        record(order, "message.posted", notify=("buyer", "seller"), excerpt="Hello <there>")
    if sent:
        dispatch()
    else:
        notifications_fan_out()
    return list(Notification.objects.filter(recipient=buyer))


@pytest.fixture
def browser(client, buyer):
    client.force_login(buyer)
    return client


def test_the_page_needs_a_login(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_page_lists_the_users_own_notices_with_unread_markers(browser, buyer, seller):
    notices_for(buyer, seller, 2)  # not sent yet: the headline is rendered from the event
    notices_for(buyer, seller, 1, sent=True)

    response = browser.get(LIST)

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count("New message from the seller on order") == 3
    assert body.count(">New</span>") == 3
    assert 'aria-label="3 unread"' in body
    assert "Hello <there>" not in body
    assert seller.email not in body


def test_the_list_costs_the_same_queries_for_n_and_3n_notices(browser, buyer, seller):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert browser.get(LIST).status_code == 200
        return len(ctx.captured_queries)

    notices_for(buyer, seller, 4)
    few = queries()
    notices_for(buyer, seller, 8)
    assert queries() == few


def test_marking_one_read_needs_a_csrf_token_and_touches_only_that_notice(buyer, seller):
    first, second = notices_for(buyer, seller, 2)
    client = Client(enforce_csrf_checks=True)
    client.force_login(buyer)
    url = reverse("notifications:read", args=[first.public_id])

    assert client.post(url).status_code == 403
    client.get(LIST)
    token = client.cookies["csrftoken"].value
    response = client.post(url, {"csrfmiddlewaretoken": token, "next": f"{LIST}?page=1"})

    assert response.status_code == 302 and response["Location"] == f"{LIST}?page=1"
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.read_at is not None and second.read_at is None
    assert notification_unread_count(user=buyer) == 1


def test_a_redirect_after_marking_read_stays_on_this_site(browser, buyer, seller):
    [notice] = notices_for(buyer, seller, 1)

    response = browser.post(
        reverse("notifications:read", args=[notice.public_id]), {"next": "https://evil.example/"}
    )

    assert response["Location"] == LIST


def test_another_users_notice_is_not_found(client, other_buyer, buyer, seller):
    [notice] = notices_for(buyer, seller, 1)
    client.force_login(other_buyer)

    response = client.post(reverse("notifications:read", args=[notice.public_id]))

    assert response.status_code == 404
    notice.refresh_from_db()
    assert notice.read_at is None


def test_mark_all_read_marks_only_the_users_own(browser, buyer, seller):
    notices_for(buyer, seller, 3)

    response = browser.post(reverse("notifications:read-all"))

    assert response.status_code == 302
    assert notification_unread_count(user=buyer) == 0
    assert notification_unread_count(user=seller) == 3
    assert browser.get(LIST + "?unread=1").content.decode().count(">New</span>") == 0


def test_marking_read_is_post_only(browser, buyer, seller):
    [notice] = notices_for(buyer, seller, 1)

    assert browser.get(reverse("notifications:read", args=[notice.public_id])).status_code == 405
    assert browser.get(reverse("notifications:read-all")).status_code == 405


def test_the_unread_only_view(browser, buyer, seller):
    first, _second = notices_for(buyer, seller, 2)
    browser.post(reverse("notifications:read", args=[first.public_id]))

    body = browser.get(LIST + "?unread=1").content.decode()

    assert body.count("New message from the seller") == 1


def test_the_preview_renders_every_template_for_staff(client, staff):
    client.force_login(staff)

    response = client.get("/notifications/preview/")

    assert response.status_code == 200
    body = response.content.decode()
    for kind in told_kinds():
        assert f'id="{kind}-' in body
    assert "generic template" in body  # the unknown kind's fallback is shown too
    assert "Asia/Shanghai" in body and "Europe/Berlin" in body


@pytest.mark.parametrize("who", ["anonymous", "buyer", "seller"])
def test_the_preview_is_not_found_for_anyone_but_staff(client, who, request):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))

    assert client.get("/notifications/preview/").status_code == 404


def test_every_page_links_the_seller_dashboard_for_shop_owners(seller, buyer):
    # given a seller and a buyer without a shop, when each opens the notifications page
    # (a view of another app, rendered without the portal's own helper)
    as_seller, as_buyer = Client(), Client()
    as_seller.force_login(seller)
    as_buyer.force_login(buyer)
    dashboard = reverse("seller-dashboard").encode()

    # then only the shop owner's header links the seller dashboard
    assert dashboard in as_seller.get(reverse("notifications:list")).content
    assert dashboard not in as_buyer.get(reverse("notifications:list")).content
