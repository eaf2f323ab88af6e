"""The order factory delivers orders as the marketplace feed does: the total is its items'."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.orders.factories import OrderFactory


def items_total(order) -> Decimal:
    return sum((item.line_total for item in order.items.all()), Decimal(0))


def test_the_default_order_totals_its_two_lines(db):
    order = OrderFactory()

    assert order.items.count() == 2
    assert order.total == items_total(order) == Decimal("59.90")


def test_given_items_make_the_total(db):
    order = OrderFactory(items=[("SKU-J", "Teapot", 3, Decimal("1200"))], currency="JPY")

    assert order.total == items_total(order) == Decimal("3600")


def test_a_total_that_is_not_the_items_sum_is_refused(db):
    with pytest.raises(ValueError, match="sum of its items"):
        OrderFactory(total=Decimal("9.00"))
