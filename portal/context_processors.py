"""What the header shows on every signed-in page, asked of the database only when it shows.

Two facts sit in the header: whether the viewer owns a shop (the "Seller dashboard" link) and
how many of their notices are unread (the badge). Each is one indexed query, run the first
time the template reads it (none for anonymous visitors).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from notifications.selectors import notification_unread_count


def header(request: HttpRequest) -> dict[str, Any]:
    """`owns_shop` and `unread_notifications` for base.html, as callables the template calls."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"owns_shop": False, "unread_notifications": 0}
    return {
        "owns_shop": lambda: user.shops.exists(),
        "unread_notifications": lambda: notification_unread_count(user=user),
    }
