from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import factory
from django.utils import timezone

from orders.models import Order, OrderItem, Shop, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    time_zone = "Europe/Berlin"
    password = factory.django.Password("correct horse battery staple")


class ShopFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shop

    owner = factory.SubFactory(UserFactory)
    slug = factory.Sequence(lambda n: f"shop-{n}")
    name = factory.Sequence(lambda n: f"Shop {n}")
    return_policy = timedelta(days=15)


Line = tuple[str, str, int, Decimal]  # sku, title, quantity, unit price

DEFAULT_LINES: tuple[Line, ...] = (
    ("SKU-1", "Travel mug", 2, Decimal("20.00")),
    ("SKU-2", "Tea sampler", 1, Decimal("19.90")),
)


def lines_total(lines: Any) -> Decimal:
    return sum((quantity * price for _sku, _title, quantity, price in lines), Decimal(0))


class OrderFactory(factory.django.DjangoModelFactory):
    """A paid order, by default of two lines (2 × 20.00 + 1 × 19.90 = 59.90 USD) paid by Visa
    ••4242. `items=[(sku, title, quantity, unit_price), …]` gives other lines; the total is
    always the sum of the lines, as the marketplace feed delivers it."""

    class Meta:
        model = Order
        skip_postgeneration_save = True

    number = factory.Sequence(lambda n: f"ORD-{100000 + n}")
    buyer = factory.SubFactory(UserFactory)
    shop = factory.SubFactory(ShopFactory)
    currency = "USD"
    items: Any = DEFAULT_LINES
    total = factory.LazyAttribute(lambda o: lines_total(o.items))
    payment_method = "card"
    payment_reference = factory.Sequence(lambda n: f"ch_{n:08d}")
    card_brand = "Visa"
    card_last4 = "4242"
    placed_at = factory.LazyFunction(timezone.now)
    return_policy = factory.LazyAttribute(lambda o: o.shop.return_policy)

    @classmethod
    def _build(cls, model_class: type[Order], *args: Any, **kwargs: Any) -> Order:
        kwargs.pop("items")
        return super()._build(model_class, *args, **kwargs)

    @classmethod
    def _create(cls, model_class: type[Order], *args: Any, **kwargs: Any) -> Order:
        lines = list(kwargs.pop("items"))
        if kwargs["total"] != lines_total(lines):
            raise ValueError(
                f"An order's total is the sum of its items ({lines_total(lines)}), "
                f"not {kwargs['total']}: give the items instead."
            )
        order: Order = super()._create(model_class, *args, **kwargs)
        OrderItem.objects.bulk_create(
            OrderItem(order=order, sku=sku, title=title, quantity=quantity, unit_price=price)
            for sku, title, quantity, price in lines
        )
        return order


def shipped(order: Order, *, at=None) -> Order:  # type: ignore[no-untyped-def]
    """Move an order to shipped the way the marketplace feed does (through the service)."""
    from orders.services import order_ship

    when = at or min(order.placed_at + timedelta(hours=6), timezone.now())
    return order_ship(
        order=order,
        carrier="SF Express",
        tracking_number="SF123456789CN",
        shipped_at=when,
        actor=None,
        now=max(timezone.now(), when),
    )


def delivered(order: Order, *, at=None) -> Order:  # type: ignore[no-untyped-def]
    from orders.services import order_deliver

    if order.status == "paid":
        shipped(order)
    start = order.shipped_at or order.placed_at
    when = at or max(start, min(start + timedelta(days=2), timezone.now()))
    return order_deliver(order=order, delivered_at=when, actor=None, now=max(timezone.now(), when))


MARKETPLACE_ZONE = ZoneInfo("Asia/Shanghai")


def ingest_body(**overrides: Any) -> dict[str, Any]:
    """A well-formed body for `POST /api/v1/orders/` (the marketplace feed); tests override
    the fields they are about."""
    body: dict[str, Any] = {
        "number": "MP-2026-0001",
        "buyer": {"email": "new.buyer@example.com", "name": "Nina New"},
        "seller": {"email": "new.seller@example.com", "name": "Nils Newshop"},
        "currency": "USD",
        "total": "59.90",
        "payment_method": "card",
        "payment_reference": "ch_feed_0001",
        "card_brand": "Visa",
        "card_last4": "4242",
        "placed_at": (timezone.now() - timedelta(hours=2)).astimezone(MARKETPLACE_ZONE).isoformat(),
        "deliver_by": (timezone.now() + timedelta(days=10)).isoformat(),
        "items": [
            {"sku": "MUG-1", "title": "Travel mug", "quantity": 2, "unit_price": "20.00"},
            {"sku": "TEA-1", "title": "Tea sampler", "quantity": 1, "unit_price": "19.90"},
        ],
    }
    body.update(overrides)
    return body
