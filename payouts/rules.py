"""What a chargeback holds back on its order (docs/rules.md, Chargebacks).

As in `orders.rules`, a `…_refusal` answers `None` or the domain error the service raises.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from kernel.errors import DomainError, InvalidTransition
from orders.models import Order

from .models import Chargeback, ChargebackStatus

CHARGEBACK_HOLDS = (
    "The buyer disputed this payment with their bank; nothing on this order moves until the "
    "bank decides."
)


def chargeback_open_for(order_id: Any) -> QuerySet[Chargeback]:
    """The open chargeback of an order (an id, or `OuterRef` to one in a subquery)."""
    return Chargeback.objects.filter(order_id=order_id, status=ChargebackStatus.OPEN)


def chargeback_open_holds(order_ids: list[int]) -> dict[int, str]:
    """Registered in `orders.hooks.cancel_holds`: an order whose payment is in a chargeback is
    not cancelled (a cancellation would refund what the bank may take back as well)."""
    held = Chargeback.objects.filter(order_id__in=order_ids, status=ChargebackStatus.OPEN)
    return dict.fromkeys(held.values_list("order_id", flat=True), CHARGEBACK_HOLDS)


def order_chargeback_refusal(*, order: Order) -> DomainError | None:
    """No new refund request or dispute on an order whose payment is in a chargeback: the bank
    is already deciding about the same money, and both would pay the buyer."""
    if chargeback_open_for(order.pk).exists():
        return InvalidTransition(CHARGEBACK_HOLDS)
    return None
