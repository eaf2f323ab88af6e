from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order

from .models import Chargeback, Payout
from .rules import chargeback_open_for


def payouts_for_order(*, order: Order) -> QuerySet[Payout]:
    return Payout.objects.filter(order=order).order_by("created_at", "id")


def chargeback_open_for_order(*, order_id: int) -> Chargeback | None:
    """The chargeback holding this order's payouts now, if any (docs/rules.md, Chargebacks)."""
    return chargeback_open_for(order_id).order_by("-opened_at").first()
