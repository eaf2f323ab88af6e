"""Reads of pages that show several apps at once. They live at the top, in the portal, because
they name relations of apps above `refunds` (a case's dispute), which `refunds` may not."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from orders.models import Order, OrderItem, User
from refunds.models import RefundCase
from refunds.rules import refund_dispute_annotations
from refunds.selectors import refund_case_read


def order_cards(*, user: User, role: str) -> QuerySet[Order]:
    """The orders `user` bought (`role="buyer"`) or sold (`"seller"`), newest first, as My
    orders shows them: shop and buyer joined; item lines and refund cases (newest first,
    each with its dispute or known to have none) prefetched, one query each per page."""
    if role not in ("buyer", "seller"):
        raise ValueError(f"role must be buyer or seller, not {role!r}")
    owner = Q(buyer=user) if role == "buyer" else Q(shop__owner=user)
    return (
        Order.objects.filter(owner)
        .select_related("shop", "buyer")
        .prefetch_related(
            Prefetch("items", queryset=OrderItem.objects.only("order_id", "quantity", "title")),
            Prefetch(
                "refund_cases",
                queryset=RefundCase.objects.select_related("dispute")
                .only(*_CARD_CASE, "dispute__public_id", "dispute__case_id")
                .annotate(**refund_dispute_annotations()),
                to_attr="cases",
            ),
        )
        .order_by("-placed_at", "-id")
    )


_CARD_CASE = (
    "public_id",
    "order_id",
    "state",
    "closed_reason",
    "created_at",
    "respond_by",
    "offer_by",
    "return_by",
    "confirm_by",
    "dispute_by",
)


def case_page_read(*, user: Any, public_id: Any) -> RefundCase:
    """`refund_case_read` with the case's dispute (or known to be absent) in the same query."""
    return refund_case_read(user=user, public_id=public_id, related=("dispute",))
