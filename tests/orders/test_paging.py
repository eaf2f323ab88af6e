"""`first_page_or_paginate`: the page `Paginator.get_page` gives, one query cheaper on the first
page of a list that fits on it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.paginator import Paginator
from django.db.models import QuerySet

from orders.models import Order
from portal.paging import first_page_or_paginate
from tests.orders.factories import OrderFactory, ShopFactory

CHINA = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=CHINA)


def mine(buyer) -> QuerySet[Order]:  # newest first (the model's ordering)
    return Order.objects.filter(buyer=buyer)


# --- first_page_or_paginate ----------------------------------------------------------------


def orders_of(buyer, count: int, start: datetime = T0) -> list[Order]:
    shop = ShopFactory()
    return [
        OrderFactory(buyer=buyer, shop=shop, placed_at=start + timedelta(hours=i))
        for i in range(count)
    ]


def page_facts(page) -> tuple:
    return (
        [o.number for o in page.object_list],
        page.number,
        page.paginator.num_pages,
        page.paginator.count,
        page.has_other_pages(),
    )


@pytest.mark.parametrize("number", [None, "", "1", 1])
def test_a_list_that_fits_on_page_one_costs_one_query(buyer, number, django_assert_num_queries):
    # given 3 orders and pages of 5
    made = orders_of(buyer, 3)

    # when page one is asked for
    with django_assert_num_queries(1):
        page = first_page_or_paginate(mine(buyer), number, 5)
        facts = page_facts(page)

    # then it is the whole list, newest first, and its count
    assert facts == ([o.number for o in reversed(made)], 1, 1, 3, False)


def test_a_list_of_exactly_one_page_costs_one_query(buyer, django_assert_num_queries):
    made = orders_of(buyer, 5)

    with django_assert_num_queries(1):
        page = first_page_or_paginate(mine(buyer), None, 5)
        facts = page_facts(page)

    assert facts == ([o.number for o in reversed(made)], 1, 1, 5, False)


def test_an_empty_list_is_an_empty_first_page(buyer, django_assert_num_queries):
    with django_assert_num_queries(1):
        page = first_page_or_paginate(mine(buyer), "1", 5)
        facts = page_facts(page)

    expected = Paginator(mine(buyer), 5).get_page("1")
    assert facts == page_facts(expected) == ([], 1, 1, 0, False)


def test_a_longer_list_counts_and_shows_the_first_page(buyer):
    # given 7 orders and pages of 5
    made = orders_of(buyer, 7)
    newest_first = [o.number for o in reversed(made)]

    # when page one is asked for
    page = first_page_or_paginate(mine(buyer), None, 5)

    # then it holds the newest 5 of 7, on two pages
    assert page_facts(page) == (newest_first[:5], 1, 2, 7, True)
    assert page.has_next() is True
    assert page.end_index() == 5
    expected = Paginator(mine(buyer), 5).get_page(None)
    assert page_facts(page) == page_facts(expected)


@pytest.mark.parametrize(
    "number", ["2", 2, "3", "0", "-1", "999", "abc", "2.5", " 1", "1.0", "01", 1.0, [1]]
)
def test_later_and_junk_page_numbers_behave_like_the_paginator(buyer, number):
    # given 12 orders and pages of 5
    made = orders_of(buyer, 12)
    newest_first = [o.number for o in reversed(made)]

    # when a page is asked for by any number
    ours = first_page_or_paginate(mine(buyer), number, 5)
    theirs = Paginator(mine(buyer), 5).get_page(number)

    # then it is the page the paginator gives
    assert page_facts(ours) == page_facts(theirs)
    assert page_facts(ours)[0] in (newest_first[:5], newest_first[5:10], newest_first[10:])


def test_page_two_reads_the_second_page(buyer):
    made = orders_of(buyer, 7)
    newest_first = [o.number for o in reversed(made)]

    page = first_page_or_paginate(mine(buyer), "2", 5)

    assert page_facts(page) == (newest_first[5:], 2, 2, 7, True)
