from __future__ import annotations

from functools import cache
from typing import Any

from django.http import HttpRequest


def unread_notifications(request: HttpRequest) -> dict[str, Any]:
    """The unread count in the header: one indexed COUNT, only for signed-in users and only
    when a template shows it (the value is a callable the template calls; counted once)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_notifications": 0}
    from .selectors import notification_unread_count

    @cache
    def count() -> int:
        return notification_unread_count(user=user)

    return {"unread_notifications": count}
