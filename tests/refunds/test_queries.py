"""Query budgets: a case with 30 messages costs what a case with 1 does, and 3N cases what N do
(docs/architecture.md, Tests), for the API list and detail and the admin list and change page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from refunds import services
from refunds.evidence import evidence_add
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund, png_bytes, upload

DETAIL_BUDGET = 3  # case (+ order, shop, buyer, message count), its items, its timeline
LIST_BUDGET = 4  # count, page, the page's items, the page's timelines


def busy_case(buyer, seller, messages: int):
    """A case with a history: an offer, `messages` messages, evidence, items."""
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    case = file_refund(
        order,
        amount="20.00",
        items=[services.ItemRequest(order_item_id=order.items.first().pk, quantity=1)],
    )
    services.refund_offer(case=case, actor=seller, amount="10.00")
    for index in range(messages):
        author = buyer if index % 2 else seller
        services.refund_message_post(case=case, author=author, body=f"message {index}")
    evidence_add(case=case, actor=buyer, upload=upload("a.png", png_bytes()))
    return case


def count(fn) -> int:
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.mark.parametrize("who", ["buyer", "seller", "staff"])
def test_detail_costs_the_same_with_1_and_30_messages(api, request, buyer, seller, who):
    viewer = api(request.getfixturevalue(who))
    quiet, busy = busy_case(buyer, seller, 1), busy_case(buyer, seller, 30)

    def detail(case):
        response = viewer.get(f"/api/v1/refunds/{case.public_id}/")
        assert response.status_code == 200
        return response.json()

    assert count(lambda: detail(quiet)) == count(lambda: detail(busy)) == DETAIL_BUDGET
    assert detail(busy)["messages"] == 30
    assert len(detail(busy)["timeline"]) > 30


def test_list_costs_the_same_for_n_and_3n_cases(api, buyer, seller, django_assert_num_queries):
    client = api(seller)
    for _ in range(3):
        busy_case(buyer, seller, 1)
    with django_assert_num_queries(LIST_BUDGET):
        assert len(client.get("/api/v1/refunds/").json()["results"]) == 3

    for index in range(6):
        busy_case(buyer, seller, 30 if index % 2 else 1)
    with django_assert_num_queries(LIST_BUDGET):
        results = client.get("/api/v1/refunds/?state=offer_made").json()["results"]
    assert len(results) == 9
    assert {r["state"] for r in results} == {"offer_made"}


def test_list_filter_by_state_is_validated(api, buyer):
    response = api(buyer).get("/api/v1/refunds/?state=nonsense")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_messages_list_costs_the_same_with_1_and_30_messages(api, buyer, seller):
    quiet, busy = busy_case(buyer, seller, 1), busy_case(buyer, seller, 30)
    client = api(buyer)

    def thread(case):
        return client.get(f"/api/v1/refunds/{case.public_id}/messages/")

    assert count(lambda: thread(quiet)) == count(lambda: thread(busy))


def test_admin_change_page_costs_the_same_with_1_and_30_messages(client, staff, buyer, seller):
    client.force_login(staff)
    quiet, busy = busy_case(buyer, seller, 1), busy_case(buyer, seller, 30)

    def page(case):
        response = client.get(f"/admin/refunds/refundcase/{case.pk}/change/")
        assert response.status_code == 200
        return response

    page(quiet)  # warms the content-type cache the first admin page fills
    assert count(lambda: page(quiet)) == count(lambda: page(busy))
    assert b"message 29" in page(busy).content


def test_admin_changelist_costs_the_same_for_n_and_3n_cases(client, staff, buyer, seller):
    client.force_login(staff)

    def page():
        response = client.get("/admin/refunds/refundcase/")
        assert response.status_code == 200

    for _ in range(3):
        busy_case(buyer, seller, 1)
    page()  # warms the content-type cache
    few = count(page)
    for _ in range(6):
        busy_case(buyer, seller, 1)
    assert count(page) == few


def test_admin_evidence_list_costs_the_same_for_n_and_3n_files(client, staff, buyer, seller):
    client.force_login(staff)

    def page():
        assert client.get("/admin/refunds/evidence/").status_code == 200

    for _ in range(2):
        busy_case(buyer, seller, 0)
    page()  # warms the content-type cache
    few = count(page)
    for _ in range(4):
        busy_case(buyer, seller, 0)
    assert count(page) == few
