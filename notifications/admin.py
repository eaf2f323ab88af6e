from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Notification, Status


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The delivery record: what was sent to whom, and what failed (read-only)."""

    list_display = [
        "created_at",
        "kind",
        "role",
        "email",
        "status",
        "attempts",
        "sent_at",
        "read_at",
    ]
    list_filter = ["status", "role", "kind"]
    search_fields = ["email", "kind", "subject"]
    list_select_related = ["recipient"]
    raw_id_fields = ["event", "recipient"]
    date_hierarchy = "created_at"
    actions = ["retry_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Retry the selected failed notices", permissions=["view"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        from .tasks import queue_deliveries

        retried = [
            n.pk
            for n in queryset.filter(status=Status.FAILED)
            if services.notification_retry(notification=n)
        ]
        queue_deliveries(retried)
        self.message_user(request, f"{len(retried)} notice(s) queued again.", messages.SUCCESS)
