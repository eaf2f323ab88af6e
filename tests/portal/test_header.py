"""The header's seller link and unread badge: one query for both, right for every viewer."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications.models import Notification
from notifications.selectors import notification_unread_count
from notifications.services import notifications_fan_out
from orders.models import Shop
from portal.context_processors import header_counts
from tests.notifications.conftest import record
from tests.portal.conftest import client_for


def header_queries(client: Client, path: str = "/") -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        body = client.get(path).content.decode()
    return body, [
        q["sql"]
        for q in queries.captured_queries
        if "notifications_notification" in q["sql"] or "orders_shop" in q["sql"]
    ]


def test_the_counts_are_what_the_orm_counts(order, buyer, seller, other_buyer):
    # given notices for the seller (one of them read) and a buyer who owns no shop
    record(order, "refund.requested", notify=("seller",))
    record(order, "message.posted", notify=("seller", "buyer"))
    notifications_fan_out()
    first = Notification.objects.filter(recipient=seller).order_by("id").first()
    Notification.objects.filter(pk=first.pk).update(read_at=timezone.now())

    # then each viewer's pair is the ORM's answer
    for user in (buyer, seller, other_buyer):
        assert header_counts(user.pk) == (
            Shop.objects.filter(owner=user).exists(),
            notification_unread_count(user=user),
        )
    assert header_counts(seller.pk) == (True, 1)
    assert header_counts(buyer.pk) == (False, 1)
    assert header_counts(other_buyer.pk) == (False, 0)


def test_a_signed_in_page_asks_once_and_shows_both(order, seller):
    record(order, "refund.requested", notify=("seller",))
    record(order, "message.posted", notify=("seller",))
    notifications_fan_out()

    body, queries = header_queries(client_for(seller))

    assert len(queries) == 1
    assert "Seller dashboard" in body
    assert 'aria-label="2 unread"' in body


def test_a_buyer_sees_no_seller_link_and_no_badge_without_notices(buyer):
    body, queries = header_queries(client_for(buyer))

    assert len(queries) == 1
    assert "Seller dashboard" not in body
    assert "unread" not in body


def test_an_anonymous_page_asks_nothing(db):
    body, queries = header_queries(Client())

    assert queries == []
    assert "Sign in" in body
