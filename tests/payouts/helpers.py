"""Shared helpers of the payout tests: an order paid through Stripe, a payout on it, one attempt.

The `stripe_server` fixture (tests/conftest.py) points the Stripe gateway at a local server.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.test import Client
from django.utils import timezone

from orders import services
from orders.models import Order
from payouts import gateway
from payouts import services as payout_services
from payouts.models import Payout
from refunds.models import RefundCase
from refunds.services import refund_accept
from tests.orders.factories import OrderFactory
from tests.payouts.stripe_openapi import example, validate_dispute
from tests.payouts.stripe_server import signature_header
from tests.refunds.factories import file_refund

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


def stripe_dispute(order: Order, **fields: Any) -> dict[str, Any]:
    """A Dispute object as Stripe sends it in `charge.dispute.*` events."""
    reference = order.payment_reference
    dispute = {
        **example("dispute"),
        "id": "dp_1Q2w3E4r5T6y",
        "object": "dispute",
        "amount": gateway.stripe_amount(order.total, order.currency),
        "currency": order.currency.lower(),
        "charge": reference if reference.startswith("ch_") else "ch_3Zz9",
        "payment_intent": reference if reference.startswith("pi_") else None,
        "reason": "fraudulent",
        "status": "needs_response",
        "created": int(timezone.now().timestamp()),
        **fields,
    }
    # Shaped as Stripe's own schema says, so the tests cannot agree with a wrong guess.
    validate_dispute(dispute)
    return dispute


def paid_order(buyer, seller, reference: str = "pi_3Ab") -> Order:  # type: ignore[no-untyped-def]
    return OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        payment_reference=reference,
        placed_at=timezone.now() - timedelta(days=1),
    )


def pending_refund_case(order: Order) -> RefundCase:
    """A case accepted by the seller: refund_pending, its payout reserved and not yet sent."""
    case = file_refund(order, now=timezone.now() - timedelta(minutes=5))
    return refund_accept(case=case, actor=order.shop.owner)
