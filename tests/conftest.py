"""Personas and shared fixtures (docs/architecture.md, Tests).

Personas live in time zones other than the marketplace's (Berlin has daylight saving), so a
deadline computed or shown in the wrong zone shows up as a failing test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from orders.rules import api_scopes
from orders.services import api_token_issue
from refunds.models import Evidence
from tests.orders.factories import OrderFactory, ShopFactory, UserFactory
from tests.payouts.helpers import STRIPE_KEY
from tests.payouts.stripe_server import RunningStripeServer, StripeServer


def pytest_configure(config: pytest.Config) -> None:
    # CI must run on the real services: fail loudly instead of silently using SQLite.
    if os.environ.get("REQUIRE_SERVICES") == "1":
        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            raise pytest.UsageError(f"REQUIRE_SERVICES=1 but the database engine is {engine}")
        if not settings.REDIS_URL:
            raise pytest.UsageError("REQUIRE_SERVICES=1 but REDIS_URL is not set")


def on_postgres() -> bool:
    return "postgresql" in settings.DATABASES["default"]["ENGINE"]


requires_postgres = pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="needs PostgreSQL (row locks under real concurrency)",
)


@pytest.fixture
def buyer(db):
    return UserFactory(email="buyer@example.com", name="Bea Buyer", time_zone="Europe/Berlin")


@pytest.fixture
def other_buyer(db):
    return UserFactory(
        email="other.buyer@example.com", name="Otto Other", time_zone="America/New_York"
    )


@pytest.fixture
def seller(db):
    user = UserFactory(
        email="seller@example.com", name="Sam Seller", time_zone="America/Los_Angeles"
    )
    ShopFactory(owner=user, slug="sams-shop", name="Sam's Shop")
    return user


@pytest.fixture
def other_seller(db):
    user = UserFactory(email="other.seller@example.com", name="Sara Other", time_zone="UTC")
    ShopFactory(owner=user, slug="saras-shop", name="Sara's Shop")
    return user


@pytest.fixture
def staff(db):
    return UserFactory(
        email="staff@example.com",
        name="Stan Staff",
        is_staff=True,
        is_superuser=True,
        time_zone="Asia/Shanghai",
    )


@pytest.fixture
def marketplace(db):
    return UserFactory(
        email="feed@marketplace.example", name="Marketplace feed", is_marketplace=True
    )


@pytest.fixture
def order(buyer, seller):
    return OrderFactory(buyer=buyer, shop=seller.shops.get())


def api_token_for(user, *, scopes=None) -> str:
    """A usable API key for `user`, issued as its owner would (docs/api.md, Authentication):
    `scopes` defaults to the account's full rights."""
    if scopes is None:
        scopes = api_scopes(user=user, token=None)
    return api_token_issue(user=user, scopes=scopes, via_token=None, actor=user, how="test").key


def api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api():
    return api_client_for


@pytest.fixture(autouse=True)
def private_storage(tmp_path, monkeypatch, settings):
    """Evidence goes to a temporary private root, never the project's var/ directory.

    The model's storage is built once when models load, so the test swaps it on the field.
    """
    root = tmp_path / "private"
    settings.PRIVATE_STORAGE_ROOT = root
    monkeypatch.setattr(
        Evidence._meta.get_field("file"), "storage", FileSystemStorage(location=root, base_url=None)
    )
    return root


# --- staff sessions and the second factor ---------------------------------------------------------

_force_login = Client.force_login


def password_only_login(client: Client, user, backend=None) -> None:  # type: ignore[no-untyped-def]
    """A session that has given the password and nothing more: what a staff member holds
    between the sign-in page and the second-factor page."""
    _force_login(client, user, backend)


def second_factor_login(client: Client, user) -> TOTPDevice:  # type: ignore[no-untyped-def]
    """Mark the client's session as verified by the user's TOTP device (made when missing),
    the session key django-otp's middleware reads (django_otp.login writes the same)."""
    device = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test device", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture(autouse=True)
def staff_sign_in_with_second_factor(monkeypatch):
    """`client.force_login(staff)` gives a staff session that has shown its second factor, as
    a real staff sign-in does, so admin and page tests need no change; tests of the second
    factor itself sign in with `password_only_login`."""

    def force_login(client: Client, user, backend=None) -> None:  # type: ignore[no-untyped-def]
        _force_login(client, user, backend)
        if user.is_staff:
            second_factor_login(client, user)

    monkeypatch.setattr(Client, "force_login", force_login)


@pytest.fixture
def stripe_server(settings) -> Iterator[StripeServer]:
    """The Stripe gateway pointed at a local server that speaks Stripe's wire format. Its
    traffic is checked against Stripe's own schemas: a test whose requests or answers disagree
    with them fails at teardown (docs/architecture.md, Tests)."""
    server = RunningStripeServer(STRIPE_KEY)
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    settings.STRIPE_API_BASE = server.state.url
    yield server.state
    server.close()
    if server.state.violations:
        pytest.fail(
            "The local Stripe server's traffic disagrees with Stripe's OpenAPI schemas:\n"
            + "\n".join(server.state.violations),
            pytrace=False,
        )
