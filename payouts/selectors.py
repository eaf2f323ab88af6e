from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order

from .models import Chargeback, ChargebackStatus, Payout


def payouts_for_order(*, order: Order) -> QuerySet[Payout]:
    return Payout.objects.filter(order=order).order_by("created_at", "id")


def chargeback_open_for_order(*, order_id: int) -> Chargeback | None:
    """The chargeback holding this order's payouts now, if any (docs/rules.md, Chargebacks)."""
    return (
        Chargeback.objects.filter(order_id=order_id, status=ChargebackStatus.OPEN)
        .order_by("-opened_at")
        .first()
    )
