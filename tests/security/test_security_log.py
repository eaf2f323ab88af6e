"""The security log: sign-in failures, lockouts, refused access and money decisions, each with
the actor and the client's address, never a secret (docs/architecture.md, Accounts and
security)."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from tests.disputes.factories import dispute_for, with_statement

PASSWORD = "correct horse battery staple"
ADDRESS = "198.51.100.7"


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger="refundportal.security")

    def events(name: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "security_event", None) == name]

    return events


def no_secret_in(records: list[logging.LogRecord], *secrets: str) -> bool:
    text = " ".join(f"{r.getMessage()} {r.__dict__!r}" for r in records)
    return not any(secret in text for secret in secrets)


def test_a_failed_sign_in_is_logged_with_the_username_and_address_only(log, buyer):
    Client(REMOTE_ADDR=ADDRESS).post(
        "/accounts/login/", {"username": buyer.email, "password": "hunter2-wrong"}
    )

    [record] = log("login_failed")
    assert (record.actor, record.address) == (buyer.email, ADDRESS)
    assert no_secret_in(log("login_failed"), "hunter2-wrong")


def test_a_lockout_is_logged(log, buyer):
    client = Client(REMOTE_ADDR=ADDRESS)
    for _ in range(5):
        client.post("/accounts/login/", {"username": buyer.email, "password": "hunter2-wrong"})

    [record] = log("lockout")
    assert (record.actor, record.address) == (buyer.email, ADDRESS)
    assert record.levelno == logging.WARNING
    assert no_secret_in(log("lockout"), "hunter2-wrong")


def test_a_refused_page_is_logged(log, marketplace):
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(marketplace)

    assert client.get("/orders/").status_code == 403

    [record] = log("access_refused")
    assert (record.actor, record.address) == (marketplace.email, ADDRESS)
    assert (record.event_status, record.event_path) == (403, "/orders/")


def test_a_service_account_refused_at_sign_in_is_logged(log, marketplace):
    marketplace.set_password(PASSWORD)
    marketplace.save(update_fields=["password"])
    Client(REMOTE_ADDR=ADDRESS).post(
        "/accounts/login/", {"username": marketplace.email, "password": PASSWORD}
    )

    [record] = log("access_refused")
    assert (record.actor, record.address) == (marketplace.email, ADDRESS)
    assert no_secret_in(log("access_refused"), PASSWORD)


def test_an_api_401_is_logged_without_the_token(log, db):
    client = Client(REMOTE_ADDR=ADDRESS)
    response = client.get(
        "/api/v1/orders/", HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567"
    )

    assert response.status_code == 401
    [record] = log("access_refused")
    assert (record.actor, record.address, record.event_status) == (None, ADDRESS, 401)
    assert no_secret_in(log("access_refused"), "0123456789abcdef0123456789abcdef01234567")


def test_an_api_403_is_logged(log, order, buyer):
    client = Client(REMOTE_ADDR=ADDRESS)
    client.force_login(buyer)

    response = client.post(
        f"/api/v1/orders/{order.number}/ship/",
        {"carrier": "DHL", "tracking_number": "1"},
        content_type="application/json",
    )

    assert response.status_code == 403
    [record] = log("access_refused")
    assert (record.actor, record.address, record.event_status) == (buyer.email, ADDRESS, 403)


def test_a_money_decision_is_logged(log, staff, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    desk = Client(REMOTE_ADDR=ADDRESS)
    desk.force_login(staff)

    desk.post(
        reverse("admin:disputes_dispute_decide", args=[dispute.pk]),
        {"outcome": "buyer", "amount": "30.00", "rationale": "The photos show the crack."},
    )

    [record] = log("money_decision")
    assert (record.actor, record.address) == (staff.email, ADDRESS)
    assert (record.event_decision, record.event_amount) == ("dispute_decide", "30.00")
    assert record.event_dispute == str(dispute.public_id)
