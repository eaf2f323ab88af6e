"""Accounts, shops, orders and the audit event table (the bottom of the app graph)."""

from __future__ import annotations

import hashlib
import uuid
import zoneinfo
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from kernel import windows
from kernel.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS
from kernel.text import MultiLineTextField, SingleLineCharField


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not a time zone (use a name like Europe/Berlin)."
        ) from exc


def default_time_zone() -> str:
    return settings.MARKETPLACE_TIME_ZONE


class TimeStamped(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:  # type: ignore[no-untyped-def]
        if not email:
            raise ValueError("Users need an email address")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:  # type: ignore[no-untyped-def]
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin, TimeStamped):
    """One account can buy and, when it owns a shop, sell. Staff work the admin desk."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(unique=True)
    name = SingleLineCharField(max_length=150, blank=True)
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # The marketplace's integration account: may push orders and shipping events with a token.
    is_marketplace = models.BooleanField(default=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.name or self.email

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@")[0]


def validate_return_policy(value):  # type: ignore[no-untyped-def]
    windows.validate_return_policy(value)


def default_return_policy():  # type: ignore[no-untyped-def]
    return windows.window("return_policy_default")


class Shop(TimeStamped):
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="shops")
    slug = models.SlugField(max_length=80, unique=True)
    name = SingleLineCharField(max_length=150)
    # How long after delivery change-of-mind returns are accepted (15 minutes … 30 days).
    return_policy = models.DurationField(
        default=default_return_policy, validators=[validate_return_policy]
    )

    def __str__(self) -> str:
        return self.name


class PaymentMethod(models.TextChoices):
    CARD = "card", "Card"
    PAYPAL = "paypal", "PayPal"
    WALLET = "wallet", "Wallet"
    BANK_TRANSFER = "bank_transfer", "Bank transfer"


class OrderStatus(models.TextChoices):
    PAID = "paid", "Paid"  # paid, not yet shipped
    SHIPPED = "shipped", "Shipped"  # handed to the carrier
    DELIVERED = "delivered", "Delivered"  # the carrier reported delivery
    CANCELLED = "cancelled", "Cancelled"  # cancelled before shipping, refunded in full


def _money_field(**kw):  # type: ignore[no-untyped-def]
    return models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kw
    )


class Order(FSMModelMixin, TimeStamped):
    number = SingleLineCharField(max_length=64, unique=True)
    buyer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="orders_bought")
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="orders")
    currency = models.CharField(max_length=3)
    total = _money_field()
    # Sum of every payout that is not cancelled; raised with F() inside the payout's transaction,
    # so the check constraint below is the last word on the refund cap under concurrency.
    reserved = _money_field(default=Decimal("0"))
    # What the buyer's bank took back in chargebacks the marketplace lost (docs/rules.md,
    # Chargebacks): it counts as refunded, so it lowers `refundable` like a payout does.
    charged_back = _money_field(default=Decimal("0"))
    payment_method = models.CharField(max_length=20, choices=PaymentMethod.choices)
    payment_reference = SingleLineCharField(max_length=128)
    card_brand = SingleLineCharField(max_length=32, blank=True)
    card_last4 = SingleLineCharField(max_length=4, blank=True)
    placed_at = models.DateTimeField()
    deliver_by = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    carrier = SingleLineCharField(max_length=80, blank=True)
    tracking_number = SingleLineCharField(max_length=80, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=40, blank=True)
    # The shop's policy when the order arrived; later policy changes do not touch it.
    return_policy = models.DurationField(default=default_return_policy)
    status = FSMField(default=OrderStatus.PAID, choices=OrderStatus.choices, protected=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [
            models.Index(fields=["buyer", "-placed_at"]),
            models.Index(fields=["shop", "-placed_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="order_total_positive"),
            models.CheckConstraint(
                condition=Q(reserved__gte=0), name="order_reserved_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("total")), name="order_reserved_within_total"
            ),
            models.CheckConstraint(
                condition=Q(charged_back__gte=0) & Q(charged_back__lte=F("total")),
                name="order_charged_back_within_total",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def refundable(self) -> Decimal:
        """Total less every payout that is not cancelled and every lost chargeback; never below
        zero (docs/rules.md, What is left to refund)."""
        return max(self.total - self.reserved - self.charged_back, Decimal("0"))

    @property
    def payment_method_label(self) -> str:
        if self.payment_method == PaymentMethod.CARD and self.card_last4:
            return f"{self.card_brand or 'Card'} ••{self.card_last4}"
        return PaymentMethod(self.payment_method).label

    @property
    def seller(self) -> User:
        return self.shop.owner

    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.SHIPPED)
    def ship(self, *, carrier: str, tracking_number: str, shipped_at) -> None:  # type: ignore[no-untyped-def]
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.shipped_at = shipped_at

    @transition(
        field=status, source=[OrderStatus.PAID, OrderStatus.SHIPPED], target=OrderStatus.DELIVERED
    )
    def deliver(self, *, delivered_at) -> None:  # type: ignore[no-untyped-def]
        self.delivered_at = delivered_at

    @transition(field=status, source=OrderStatus.PAID, target=OrderStatus.CANCELLED)
    def cancel(self, *, reason: str, at) -> None:  # type: ignore[no-untyped-def]
        self.cancel_reason = reason
        self.cancelled_at = at


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    sku = SingleLineCharField(max_length=64)
    title = SingleLineCharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = _money_field()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_item_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="order_item_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.title}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class Event(models.Model):
    """The audit trail and the notification outbox in one table (docs/architecture.md, The event
    table).

    Services write one row per transition (sweeps in bulk). The payload carries what a notice
    needs (recipients, numbers, deadlines), so `notifications` reads nothing else of the domain.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    case_id = models.UUIDField(null=True, blank=True, db_index=True)
    dispute_id = models.UUIDField(null=True, blank=True, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )  # null: the system
    kind = models.CharField(max_length=60)
    from_state = models.CharField(max_length=30, blank=True)
    to_state = models.CharField(max_length=30, blank=True)
    note = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set once the notification dispatcher has fanned the event out to its recipients.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["id"],
                name="event_undispatched_idx",
                condition=Q(dispatched_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_state}→{self.to_state}"

    @property
    def actor_label(self) -> str:
        return str(self.actor) if self.actor_id else "system"


class Message(models.Model):
    """Buyer–seller thread of an order.

    It carries on in any case and becomes a dispute's transcript.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="messages")
    case_id = models.UUIDField(null=True, blank=True)
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = MultiLineTextField(max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["order", "created_at"])]

    def __str__(self) -> str:
        return f"Message {self.public_id} on {self.order_id}"


class ApiScope(models.TextChoices):
    """What an API token may do (docs/api.md, Authentication). A token's scopes only narrow what
    its account's role allows (`rules.api_scopes`)."""

    READ = "read", "Read"  # every safe method (GET, HEAD, OPTIONS)
    ACT = "act", "Act as a party"  # a buyer's or seller's writes
    DECIDE = "decide", "Decide (staff)"  # staff decisions on disputes
    MARKETPLACE = "marketplace", "Marketplace feed"  # orders, shipping and delivery events


class ApiToken(models.Model):
    """An API key, stored only as the SHA-256 digest of its secret (docs/api.md, Authentication).

    Keys are 256 random bits, so a fast hash is right: there is nothing to guess a key from, and
    the digest of a leaked database is no key. `prefix` (the key's first characters) names the
    token in lists and the admin and narrows the lookup; the digest decides.
    """

    PREFIX_LENGTH = 12

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    # Written at most once a minute per token (services.API_TOKEN_TOUCH_EVERY), not per request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @staticmethod
    def digest_of(key: str) -> str:
        """The stored form of a key. Keys are random, not chosen by people, so a fast hash
        suffices (there is nothing to brute-force from a digest) and keeps the lookup cheap."""
        return hashlib.sha256(key.encode()).hexdigest()

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` an account sent with a POST under /api/v1/ (docs/api.md,
    Idempotency; docs/architecture.md, Idempotent writes).

    While its first request runs, `locked_until` holds the claim (a crash leaves it to expire);
    once that request is answered, the answer is kept here for 24 h and replayed to a retry with
    the same `fingerprint` (a hash of method, path and canonical body)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # Set while the first request runs; null once its answer is stored.
    locked_until = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    # The answer's headers a client reads (`Location` of a 201), as given.
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(default=b"", blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user"),
        ]
        # The hourly cleanup deletes by age.
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]

    def __str__(self) -> str:
        return f"{self.key} of user {self.user_id}"
