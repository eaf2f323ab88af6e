"""`/api/v1/notifications/`: the caller's own notices, paginated, and marking them read."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from tests.notifications.test_views import notices_for

URL = "/api/v1/notifications/"


def test_the_list_shows_only_the_callers_notices_newest_first(api, buyer, seller, other_buyer):
    notices_for(buyer, seller, 3)
    notices_for(other_buyer, seller, 2)

    response = api(buyer).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    mine = {str(n.public_id) for n in Notification.objects.filter(recipient=buyer)}
    assert {r["id"] for r in body["results"]} == mine
    first = body["results"][0]
    assert set(first) == {
        "id",
        "kind",
        "subject",
        "link",
        "unread",
        "read_at",
        "created_at",
        "email_status",
    }
    assert first["subject"].startswith("New message from the seller on order")
    assert first["unread"] is True and first["read_at"] is None
    assert first["link"].startswith("http")
    created = [r["created_at"] for r in body["results"]]
    assert created == sorted(created, reverse=True)


def test_the_list_is_paginated_and_filters_unread(api, buyer, seller):
    notices = notices_for(buyer, seller, 5)
    api(buyer).post(f"{URL}{notices[0].public_id}/read/")

    page = api(buyer).get(URL, {"limit": 2}).json()
    unread = api(buyer).get(URL, {"unread": "1"}).json()

    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert unread["count"] == 4
    assert str(notices[0].public_id) not in {r["id"] for r in unread["results"]}


def test_the_list_costs_the_same_queries_for_n_and_3n_notices(api, buyer, seller):
    client = api(buyer)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL).status_code == 200
        return len(ctx.captured_queries)

    notices_for(buyer, seller, 4)
    few = queries()
    notices_for(buyer, seller, 8)
    assert queries() == few


def test_marking_read(api, buyer, seller):
    [notice] = notices_for(buyer, seller, 1)

    response = api(buyer).post(f"{URL}{notice.public_id}/read/")

    assert response.status_code == 200
    assert response.json()["unread"] is False
    notice.refresh_from_db()
    assert notice.read_at is not None
    # again: still read, same instant
    again = api(buyer).post(f"{URL}{notice.public_id}/read/").json()
    assert again["read_at"] == response.json()["read_at"]


def test_another_users_notice_is_404_in_the_error_envelope(api, buyer, seller, other_buyer):
    [notice] = notices_for(buyer, seller, 1)

    response = api(other_buyer).post(f"{URL}{notice.public_id}/read/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    notice.refresh_from_db()
    assert notice.read_at is None


def test_mark_all_read(api, buyer, seller):
    notices_for(buyer, seller, 3)

    response = api(buyer).post(f"{URL}read-all/")

    assert response.json() == {"marked": 3}
    assert api(buyer).get(URL, {"unread": "1"}).json()["count"] == 0
    assert Notification.objects.filter(recipient=seller, read_at__isnull=True).count() == 3


def test_anonymous_callers_get_401(api):
    response = api(None).get(URL)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
