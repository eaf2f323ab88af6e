"""Shared helpers of the payout tests: an order paid through Stripe, a payout on it, one attempt.

The `stripe_server` fixture (tests/conftest.py) points the Stripe gateway at a local server.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from orders import services
from orders.models import Order
from payouts import services as payout_services
from payouts.models import Payout
from tests.orders.factories import OrderFactory

STRIPE_KEY = "sk_test_" + "local0server" * 2


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
