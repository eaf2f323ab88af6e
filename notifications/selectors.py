"""Reads of the notifications app; every list is the user's own (STYLE §1, §8)."""

from __future__ import annotations

from typing import Any

from django.db import connections, router
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
    if user is None or not getattr(user, "is_authenticated", False):
        return 0
    # Plain SQL: the header asks this on every page, and building the ORM COUNT cost more
    # Python time than the (index-only) query itself. Same rows as
    # Notification.objects.filter(recipient=user, read_at__isnull=True).count().
    meta = Notification._meta
    recipient = meta.get_field("recipient").column
    read_at = meta.get_field("read_at").column
    with connections[router.db_for_read(Notification)].cursor() as cursor:
        cursor.execute(
            f'SELECT COUNT(*) FROM "{meta.db_table}" WHERE "{recipient}" = %s '  # noqa: S608
            f'AND "{read_at}" IS NULL',
            [user.pk],
        )
        return int(cursor.fetchone()[0])


def notifications_with_headlines(*, notifications: Any, user: Any) -> list[Notification]:
    """The page's rows with `headline` set; the recipient is the viewer (no query for it)."""
    rows = list(notifications)
    for notification in rows:
        notification.recipient = user
        notification.headline = notification_headline(notification=notification)  # type: ignore[attr-defined]
    return rows
