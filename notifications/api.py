"""`/api/v1/notifications/`: the caller's own notices (docs/rules.md, Notifications; docs/api.md,
Notifications)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Notification
from .selectors import notification_list_for_user


class NotificationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    subject = serializers.SerializerMethodField()
    unread = serializers.SerializerMethodField()
    email_status = serializers.CharField(source="status", read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "subject",
            "link",
            "unread",
            "read_at",
            "created_at",
            "email_status",
        ]
        read_only_fields = fields

    def get_subject(self, notification: Notification) -> str:
        # The viewer is the recipient: set it so rendering an unsent headline needs no query.
        notification.recipient = self.context["request"].user
        return services.notification_headline(notification=notification)

    def get_unread(self, notification: Notification) -> bool:
        return notification.read_at is None


class NotificationList(generics.ListAPIView):
    """The caller's notices, newest first; `?unread=1` for the unread ones only."""

    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Notification.objects.none()
        return notification_list_for_user(
            user=self.request.user, unread_only=self.request.query_params.get("unread") == "1"
        )


class NotificationRead(APIView):
    """Mark one of the caller's notices read; anyone else's is 404."""

    serializer_class = NotificationSerializer

    def post(self, request: Request, public_id: Any) -> Response:
        from django.http import Http404

        try:
            notification = services.notification_mark_read(
                user=request.user,  # type: ignore[arg-type]
                notification_id=uuid.UUID(str(public_id)),
            )
        except (Notification.DoesNotExist, ValueError) as exc:
            raise Http404 from exc
        return Response(NotificationSerializer(notification, context={"request": request}).data)


class NotificationReadAll(APIView):
    @extend_schema(
        request=None,
        responses=inline_serializer(
            "NotificationReadAllOut", {"marked": serializers.IntegerField()}
        ),
    )
    def post(self, request: Request) -> Response:
        marked = services.notification_mark_all_read(user=request.user)  # type: ignore[arg-type]
        return Response({"marked": marked})


urlpatterns = [
    path("notifications/", NotificationList.as_view(), name="notification-list"),
    path("notifications/read-all/", NotificationReadAll.as_view(), name="notification-read-all"),
    path(
        "notifications/<str:public_id>/read/", NotificationRead.as_view(), name="notification-read"
    ),
]
