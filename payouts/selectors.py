from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order

from .models import Payout


def payouts_for_order(*, order: Order) -> QuerySet[Payout]:
    return Payout.objects.filter(order=order).order_by("created_at", "id")
