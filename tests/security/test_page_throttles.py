"""The portal's forms are held to the same per-user budgets as the API (one shared counter)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Message
from tests.conftest import api_client_for
from tests.refunds.factories import file_refund


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00")


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_posting_messages_from_the_page_is_limited_per_user(throttle_rates, case, buyer, seller):
    # given a budget of two messages a minute
    throttle_rates(messages="2/min")
    url = reverse("case-message", kwargs={"case_id": case.public_id})
    page = _client(buyer)

    # when the buyer posts three times from the case page
    answers = [page.post(url, {"body": f"hello {n}"}).status_code for n in range(3)]

    # then the third is refused with a page saying when to retry, and was not saved
    assert answers[:2] != [429, 429] and answers[2] == 429
    assert Message.objects.filter(order=case.order, author=buyer).count() == 2
    refused = page.post(url, {"body": "again"})
    assert b"Too many requests" in refused.content
    assert refused["Retry-After"]
    # and the seller's own budget is untouched
    assert _client(seller).post(url, {"body": "answer"}).status_code != 429


def test_the_page_and_the_api_share_one_budget(throttle_rates, case, buyer):
    throttle_rates(messages="2/min")
    api_url = reverse("api:refund-messages", kwargs={"public_id": case.public_id})
    for n in range(2):
        assert (
            api_client_for(buyer).post(api_url, {"body": f"api {n}"}, format="json").status_code
            == 201
        )

    page_answer = _client(buyer).post(
        reverse("case-message", kwargs={"case_id": case.public_id}), {"body": "from the page"}
    )

    assert page_answer.status_code == 429


def test_evidence_uploads_from_the_page_are_limited(throttle_rates, case, buyer):
    throttle_rates(uploads="1/min")
    url = reverse("case-evidence", kwargs={"case_id": case.public_id})
    page = _client(buyer)
    page.post(url, {"kind": "photo"})

    assert page.post(url, {"kind": "photo"}).status_code == 429
