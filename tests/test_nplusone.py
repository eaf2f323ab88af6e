"""The N+1 detector is on in the test settings: a lazy load per row fails the test."""

from __future__ import annotations

import pytest
from nplusone.core import exceptions, profiler

from orders.models import Order
from tests.orders.factories import OrderFactory


def test_a_lazy_load_per_row_is_caught(order, other_buyer, seller):
    # given two orders, when each order's buyer is loaded lazily in a loop
    OrderFactory(buyer=other_buyer, shop=seller.shops.get())
    with pytest.raises(exceptions.NPlusOneError), profiler.Profiler():
        for each in Order.objects.all():
            _ = each.buyer.email
    # then the detector raised; the same loop with select_related is fine
    with profiler.Profiler():
        for each in Order.objects.select_related("buyer"):
            _ = each.buyer.email
