"""Abuse limits: per-user throttles on filing, messages and uploads (429 `rate_limited` in the
error envelope; docs/api.md, Errors), and login lockout after repeated failures (django-axes)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Message
from tests.conftest import api_client_for
from tests.disputes.factories import dispute_for, png_upload
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

PASSWORD = "correct horse battery staple"  # the persona factories' password


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"]


@pytest.fixture
def case(order, seller):
    return file_refund(order, amount="20.00")


@pytest.fixture
def other_case(other_buyer, seller):
    return file_refund(OrderFactory(buyer=other_buyer, shop=seller.shops.get()), amount="20.00")


def _post_twice_then_once_more(client: Any, url: str, body: Any, fmt: str = "json") -> Any:
    for _ in range(2):
        response = client.post(url, body() if callable(body) else body, format=fmt)
        assert response.status_code != 429, response.content[:300]
    return client.post(url, body() if callable(body) else body, format=fmt)


def test_filing_refunds_is_limited_per_user(throttle_rates, buyer, other_buyer, seller):
    throttle_rates(refund_filing="2/min")
    url = reverse("api:refund-list")
    orders = [OrderFactory(buyer=buyer, shop=seller.shops.get()) for _ in range(3)]
    bodies = iter(
        {
            "order": o.number,
            "reason": "changed_mind",
            "amount": "10.00",
            "description": "x",
            "return_item": False,
        }
        for o in orders
    )

    third = _post_twice_then_once_more(api_client_for(buyer), url, lambda: next(bodies))

    assert_rate_limited(third)
    # another buyer is not held back by the first one's limit; reading is never limited
    other = OrderFactory(buyer=other_buyer, shop=seller.shops.get())
    assert (
        api_client_for(other_buyer)
        .post(
            url,
            {
                "order": other.number,
                "reason": "changed_mind",
                "amount": "10.00",
                "description": "x",
                "return_item": False,
            },
            format="json",
        )
        .status_code
        == 201
    )
    assert api_client_for(buyer).get(url).status_code == 200


def test_filing_disputes_is_limited_per_user(throttle_rates, buyer, seller, staff):
    throttle_rates(dispute_filing="2/min")
    case = dispute_for(buyer=buyer, seller=seller).case  # the buyer's one disputable case
    body = {
        "refund": str(case.public_id),
        "statement": "x",
        "contact_name": "B",
        "contact_email": "b@example.com",
        "desired_amount": "10.00",
    }

    third = _post_twice_then_once_more(api_client_for(buyer), reverse("api:dispute-list"), body)

    assert_rate_limited(third)
    assert api_client_for(buyer).get(reverse("api:dispute-list")).status_code == 200


@pytest.mark.parametrize("where", ["order", "case", "dispute"])
def test_posting_messages_is_limited_per_user(
    where, throttle_rates, buyer, other_buyer, seller, case, other_case
):
    throttle_rates(messages="2/min")
    if where == "order":
        url = reverse("api:order-messages", kwargs={"number": case.order.number})
        other_url = reverse("api:order-messages", kwargs={"number": other_case.order.number})
    elif where == "case":
        url = reverse("api:refund-messages", kwargs={"public_id": case.public_id})
        other_url = reverse("api:refund-messages", kwargs={"public_id": other_case.public_id})
    else:
        dispute = dispute_for(buyer=buyer, seller=seller)
        url = reverse("api:dispute-messages", kwargs={"dispute_id": dispute.public_id})
        other_url = None
    before = Message.objects.count()

    third = _post_twice_then_once_more(api_client_for(buyer), url, {"body": "hello"})

    assert_rate_limited(third)
    if where != "dispute":
        assert Message.objects.count() == before + 2
        assert (
            api_client_for(other_buyer).post(other_url, {"body": "hi"}, format="json").status_code
            == 201
        )


@pytest.mark.parametrize("where", ["case", "dispute"])
def test_uploading_evidence_is_limited_per_user(where, throttle_rates, buyer, seller, case):
    throttle_rates(uploads="2/min")
    if where == "case":
        url = reverse("api:refund-evidence", kwargs={"public_id": case.public_id})
    else:
        dispute = dispute_for(buyer=buyer, seller=seller)
        url = reverse("api:dispute-evidence", kwargs={"dispute_id": dispute.public_id})

    third = _post_twice_then_once_more(
        api_client_for(buyer), url, lambda: {"file": png_upload()}, fmt="multipart"
    )

    assert_rate_limited(third)
    # the seller uploads on the same case all the same (a per-user limit)
    if where == "case":
        response = api_client_for(seller).post(url, {"file": png_upload()}, format="multipart")
        assert response.status_code == 201, response.content[:300]


# --- login lockout ------------------------------------------------------------------------------


def _attempt(client: Client, url: str, email: str, password: str) -> Any:
    return client.post(url, {"username": email, "password": password}, REMOTE_ADDR="203.0.113.7")


@pytest.mark.parametrize(
    "login_url", ["/accounts/login/", "/admin/login/"], ids=["portal", "admin"]
)
def test_repeated_failed_logins_lock_the_account_out(login_url, settings, staff):
    # given a limit of three failures
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(enforce_csrf_checks=False)
    assert client.get(login_url).status_code == 200

    # when someone guesses the password three times
    for _ in range(3):
        response = _attempt(client, login_url, staff.email, "wrong-guess")
        assert response.status_code in {200, 429}

    # then even the right password is refused while the lockout lasts
    locked = _attempt(client, login_url, staff.email, PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "login_url", ["/accounts/login/", "/admin/login/"], ids=["portal", "admin"]
)
def test_a_correct_password_before_the_limit_signs_in(login_url, settings, staff):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    _attempt(client, login_url, staff.email, "wrong-guess")
    response = _attempt(client, login_url, staff.email, PASSWORD)
    assert response.status_code == 302
    assert client.session.get("_auth_user_id") == str(staff.pk)
