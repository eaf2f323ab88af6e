"""Reads of the notifications app; every list is the user's own (docs/architecture.md, Dependency
direction; Permissions)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import Notification
from .services import notification_headline


def notification_list_for_user(*, user: Any, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notices, newest first, with their event (the headline of a notice not sent
    yet is rendered from its payload, so the page needs no further query)."""
    notifications = Notification.objects.filter(recipient=user).select_related("event")
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-created_at", "-id")


def notification_unread_count(*, user: Any) -> int:
    """The user's unread notices (the page header's badge)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notifications_with_headlines(*, notifications: Any, user: Any) -> list[Notification]:
    """The page's rows with `headline` set; the recipient is the viewer (no query for it)."""
    rows = list(notifications)
    for notification in rows:
        notification.recipient = user
        notification.headline = notification_headline(notification=notification)  # type: ignore[attr-defined]
    return rows
