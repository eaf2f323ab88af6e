"""Reads of the orders app; every object a user asks for is fetched through them (STYLE §8)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from .models import Event, Order, OrderItem, Payout, Shop, User
from .sql import Shape, columns, select


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


def payouts_for_order(*, order: Order) -> QuerySet[Payout]:
    return Payout.objects.filter(order=order).order_by("created_at", "id")


def events_for_order(*, order: Order) -> QuerySet[Event]:
    return Event.objects.filter(order=order).select_related("actor")


# --- My orders, in SQL (orders/sql.py says why) -------------------------------------------------

# What an order card reads: the windows, the money, the payment method, the status.
_CARD_ORDER = Shape(
    Order,
    "o",
    (
        "id",
        "number",
        "buyer_id",
        "shop_id",
        "currency",
        "total",
        "reserved",
        "payment_method",
        "card_brand",
        "card_last4",
        "placed_at",
        "deliver_by",
        "shipped_at",
        "delivered_at",
        "return_policy",
        "status",
    ),
)
# An order's shop as pages show and link it, and its buyer as `display_name` reads them (the
# refunds app's case read joins the same two).
SHOP_SHAPE = Shape(Shop, "s", ("id", "owner_id", "slug", "name"))
BUYER_SHAPE = Shape(User, "b", ("id", "email", "name"))


class OrderCards:
    """The orders `user` bought (`role="buyer"`) or sold (`"seller"`), newest first, as the
    order list's cards read them: each with its shop, and its buyer when sold.

    Sliced like a queryset (`cards[0:50]` is one query) and counted with `count()`, so a
    `Paginator` pages it; a slice holds `Order` instances with the card's fields loaded.
    """

    def __init__(self, *, user: User, role: str) -> None:
        if role not in ("buyer", "seller"):
            raise ValueError(f"role must be buyer or seller, not {role!r}")
        self.user = user
        self.role = role
        order, shop = Order._meta, Shop._meta
        self._from = f'"{order.db_table}" AS o JOIN "{shop.db_table}" AS s ON s."id" = o."shop_id"'
        self._where = 'o."buyer_id" = %s' if role == "buyer" else 's."owner_id" = %s'

    def count(self) -> int:
        ((total,),) = select(
            f"SELECT COUNT(*) FROM {self._from} WHERE {self._where}",  # noqa: S608
            [self.user.pk],
            (),
            extra=1,
        )
        return int(total)

    def __getitem__(self, key: slice) -> list[Order]:
        if not isinstance(key, slice) or key.step is not None or key.stop is None:
            raise TypeError("OrderCards takes a slice with an end and no step")
        start = key.start or 0
        shapes = [_CARD_ORDER, SHOP_SHAPE]
        joins = self._from
        if self.role == "seller":
            shapes.append(BUYER_SHAPE)
            joins += f' JOIN "{User._meta.db_table}" AS b ON b."id" = o."buyer_id"'
        sql = (
            f"SELECT {columns(*shapes)} FROM {joins} WHERE {self._where} "  # noqa: S608
            'ORDER BY o."placed_at" DESC, o."id" DESC LIMIT %s OFFSET %s'
        )
        params: list[Any] = [self.user.pk, max(key.stop - start, 0), start]
        cards = []
        for row in select(sql, params, shapes):
            order = row[0]
            order.shop = row[1]
            order.buyer = row[2] if self.role == "seller" else self.user
            cards.append(order)
        return cards


def order_item_lines(*, order_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """`(quantity, title)` of each order's lines, in the order they were bought."""
    lines: dict[int, list[tuple[int, str]]] = defaultdict(list)
    if not order_ids:
        return lines
    item = OrderItem._meta
    marks = ", ".join(["%s"] * len(order_ids))
    for order_id, quantity, title in select(
        f'SELECT i."order_id", i."quantity", i."title" FROM "{item.db_table}" AS i '  # noqa: S608
        f'WHERE i."order_id" IN ({marks}) ORDER BY i."id"',
        order_ids,
        (),
        extra=3,
    ):
        lines[order_id].append((quantity, title))
    return lines
