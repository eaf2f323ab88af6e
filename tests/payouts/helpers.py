"""Shared helpers of the payout tests: an order paid through Stripe, a payout on it, one attempt.

The `stripe_server` fixture (tests/conftest.py) points the Stripe gateway at a local server.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.test import Client

from orders import services
from orders.models import Order
from payouts import services as payout_services
from payouts.models import Payout
from tests.orders.factories import OrderFactory
from tests.payouts.stripe_server import signature_header

STRIPE_KEY = "sk_test_" + "local0server" * 2
WEBHOOK_SECRET = "whsec_" + "local0webhook0secret"
URL = "/webhooks/stripe/"


def stripe_order(
    *, reference: str = "pi_3Ab", currency: str = "USD", price: str = "59.90"
) -> Order:
    return OrderFactory(
        payment_reference=reference, currency=currency, items=[("SKU-1", "Mug", 1, Decimal(price))]
    )


def make_payout(order: Order, amount: str | None = None, key: str = "refund:case-1") -> Payout:
    with transaction.atomic():
        locked = services.order_lock(order)
        return payout_services.payout_create(
            order=locked,
            amount=Decimal(amount) if amount else locked.total,
            purpose="cancel",
            subject_id=None,
            idempotency_key=key,
            actor=None,
        )


def attempt(payout: Payout) -> tuple[str, Payout]:
    outcome = payout_services.payout_attempt(payout_id=payout.pk)
    return outcome, Payout.objects.get(pk=payout.pk)


def deliver(
    event: dict[str, Any] | str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> Any:
    """POST the event as Stripe does: the JSON body, signed at `timestamp` (now by default)."""
    payload = event if isinstance(event, str) else json.dumps(event)
    signed_at = int(time.time()) if timestamp is None else timestamp
    return Client().post(
        URL,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(payload, secret, signed_at),
    )
