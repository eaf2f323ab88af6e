"""Fixtures of the page tests: clients per persona and cases in each state, made by services."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from refunds import services as refund_services
from tests.orders.factories import OrderFactory, delivered


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def as_user():
    return client_for


def png_bytes(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_upload(name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png_bytes(), content_type="image/png")


def delivered_order(buyer, seller, *, days_ago: int = 1, **kw):  # type: ignore[no-untyped-def]
    """An order delivered `days_ago` days ago (placed two days before that)."""
    now = timezone.now()
    order = OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=now - timedelta(days=days_ago + 2), **kw
    )
    return delivered(order, at=now - timedelta(days=days_ago))


def file_case(
    order,
    buyer,
    *,
    reason: str = "not_as_described",
    amount: str = "59.90",  # type: ignore[no-untyped-def]
    return_item: bool = False,
    description: str = "The mug is cracked.",
):
    return refund_services.refund_request(
        order=order,
        buyer=buyer,
        reason=reason,
        amount=amount,
        description=description,
        return_item=return_item,
    )


@pytest.fixture
def delivered_order_factory(buyer, seller):
    def make(**kw):  # type: ignore[no-untyped-def]
        return delivered_order(buyer, seller, **kw)

    return make


@pytest.fixture
def requested_case(buyer, seller):
    return file_case(delivered_order(buyer, seller), buyer)


@pytest.fixture
def offer_case(requested_case, seller):
    return refund_services.refund_offer(case=requested_case, actor=seller, amount="20.00")


@pytest.fixture
def rejected_case(requested_case, seller):
    return refund_services.refund_reject(
        case=requested_case, actor=seller, reason="The photos show normal wear."
    )


@pytest.fixture
def return_case(buyer, seller):
    case = file_case(delivered_order(buyer, seller), buyer, return_item=True)
    return refund_services.refund_accept(case=case, actor=seller)


@pytest.fixture
def shipped_return_case(return_case, buyer):
    return refund_services.refund_ship_return(
        case=return_case, actor=buyer, carrier="SF Express", tracking_number="SF0001112223"
    )


MONEY = Decimal("59.90")
