"""Reads of the orders app; every object a user asks for is fetched through them
(docs/architecture.md, Permissions)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from .models import Order, User


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    qs = Order.objects.select_related("shop", "shop__owner", "buyer")
    if user.is_staff or user.is_marketplace:
        return qs
    return qs.filter(Q(buyer=user) | Q(shop__owner=user))


def order_get_for_user(*, user: User, number: str) -> Order:
    try:
        return order_list_for_user(user=user).get(number=number)
    except Order.DoesNotExist as exc:
        raise Http404("No such order.") from exc
