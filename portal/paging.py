"""Pages of a list that usually fits on one: no COUNT(*) query when it does."""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.core.paginator import Page, Paginator


class Pageable(Protocol):
    """What a `Paginator` reads: a queryset, or any list that counts and slices itself."""

    def count(self) -> int: ...

    def __getitem__(self, key: slice, /) -> Any: ...


def first_page_or_paginate(queryset: Pageable, number: Any, per_page: int) -> Page:
    """What `Paginator(queryset, per_page).get_page(number)` returns, one query cheaper on the
    first page of a list that fits on it.

    Most buyers have a handful of orders and most people a few notifications, yet a paginator
    asks for the total before it reads a row. Page one reads `per_page + 1` rows instead: when
    the extra row is missing, the rows read are the whole list and their number is the count.
    Only a longer list, or a later page, pays for the COUNT.
    """
    # Django's stubs want a Sized iterable; a Paginator itself only counts and slices.
    paginator: Paginator[Any] = Paginator(cast(Any, queryset), per_page)
    if number not in (None, "", "1", 1):
        return paginator.get_page(number)
    rows = list(queryset[: per_page + 1])
    if len(rows) <= per_page:
        # `count` is a cached property: setting it is what computing it would have stored.
        paginator.count = len(rows)  # type: ignore[misc]
    return Page(rows[:per_page], 1, paginator)
