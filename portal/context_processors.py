"""What the header shows on every page, asked of the database once, and only when it shows.

Two numbers sit in the header of every signed-in page: whether the viewer owns a shop (the
"Seller dashboard" link) and how many of their notices are unread (the badge). They come from
two apps; this module sits above both (like the URL configuration) and asks for the two in a
single round trip: each query on its own cost more Python time (cursor, wrapper, driver) than
the index lookups themselves (two: 0.32 ms of CPU a page; one: 0.17 ms).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections, router
from django.http import HttpRequest

from notifications.models import Notification
from orders.models import Shop


def header_counts(user_id: Any) -> tuple[bool, int]:
    """(owns a shop, unread notices) for `user_id`: the same answers as
    `Shop.objects.filter(owner=…).exists()` and `notification_unread_count`."""
    shop, notice = Shop._meta, Notification._meta
    with connections[router.db_for_read(Notification)].cursor() as cursor:
        cursor.execute(
            f'SELECT EXISTS (SELECT 1 FROM "{shop.db_table}" '  # noqa: S608
            f'WHERE "{shop.get_field("owner").column}" = %s), '
            f'(SELECT COUNT(*) FROM "{notice.db_table}" '
            f'WHERE "{notice.get_field("recipient").column}" = %s '
            f'AND "{notice.get_field("read_at").column}" IS NULL)',
            [user_id, user_id],
        )
        owns_shop, unread = cursor.fetchone()
    return bool(owns_shop), int(unread)


def header(request: HttpRequest) -> dict[str, Any]:
    """`owns_shop` and `unread_notifications` for base.html: callables the template calls,
    answered by one query the first time either is read (none for anonymous visitors)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"owns_shop": False, "unread_notifications": 0}

    @cache
    def counts() -> tuple[bool, int]:
        return header_counts(user.pk)

    return {
        "owns_shop": lambda: counts()[0],
        "unread_notifications": lambda: counts()[1],
    }
