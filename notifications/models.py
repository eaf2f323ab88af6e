"""Notices: one row per (audit event, recipient), fanned out from `orders.Event`
(docs/architecture.md, The event table).

The event table is the outbox; this table is the delivery record. A row is the email that was
(or will be) sent and the notice the user sees in the portal.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending", "Pending"  # fanned out, not yet handed to the email backend
    SENDING = "sending", "Sending"  # a worker holds it until `claimed_until`
    SENT = "sent", "Sent"  # the backend accepted it; never sent again
    FAILED = "failed", "Failed"  # the last attempt raised; retried with backoff up to the max


class Role(models.TextChoices):
    BUYER = "buyer", "Buyer"
    SELLER = "seller", "Seller"
    STAFF = "staff", "Staff"


class Notification(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey("orders.Event", on_delete=models.PROTECT, related_name="+")
    # Null for a staff alert address (STAFF_ALERT_EMAILS) that is no account of the portal.
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    # Where the email goes, taken at fan-out; for an account, its address at that moment.
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    kind = models.CharField(max_length=60)
    # Rendered when sent (not at fan-out): rendering is the costly part, so it is spread over
    # the workers instead of the one dispatcher, and the row then holds exactly what went out.
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    link = models.URLField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A worker that died while sending lets go of the row when this passes.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Which claim holds the row: a worker records an outcome only under its own claim.
    claim_token = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # (event, recipient, email) is unique: the same event never notifies the same person
            # twice. Written as two partial constraints because a NULL recipient (a staff alert
            # address) would make a plain UNIQUE never fire on SQLite and PostgreSQL < 15.
            models.UniqueConstraint(
                fields=["event", "recipient"],
                condition=Q(recipient__isnull=False),
                name="notification_once_per_user",
            ),
            models.UniqueConstraint(
                fields=["event", "email"],
                name="notification_once_per_address",
            ),
        ]
        indexes = [
            # The re-dispatch scan reads only undelivered rows.
            models.Index(
                fields=["updated_at"],
                name="notification_undelivered_idx",
                condition=Q(status__in=["pending", "sending", "failed"]),
            ),
            # The header's unread count.
            models.Index(
                fields=["recipient"],
                name="notification_unread_idx",
                condition=Q(read_at__isnull=True),
            ),
            # The user's list, newest first.
            models.Index(fields=["recipient", "-created_at", "-id"], name="notification_inbox_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.email} ({self.status})"

    @property
    def is_unread(self) -> bool:
        return self.read_at is None
