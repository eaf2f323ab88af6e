"""Payouts: money going back to the original payment method, exactly once per idempotency key.

The app sits between `refunds` and `orders` (docs/architecture.md): it knows orders, and the apps
above it tell it what to pay for. Its tables keep the names they had when payouts lived in
`orders`; the move changed Django's state only.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from kernel.money import format_money
from kernel.text import MultiLineTextField, SingleLineCharField
from orders.models import Order, PaymentMethod, TimeStamped, User, _money_field


class PayoutStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # approved, not yet confirmed by the gateway
    SUCCEEDED = "succeeded", "Succeeded"  # the gateway refunded the money
    FAILED = "failed", "Failed"  # the gateway refused; retried with the same key
    CANCELLED = "cancelled", "Cancelled"  # staff gave up on it; its reservation is released
    # The gateway cannot pay this payment method (PayPal, wallet, bank transfer with Stripe):
    # never sent; staff pay outside the portal and mark it paid (docs/rules.md, Payout states).
    AWAITING_STAFF = "awaiting_staff", "Awaiting staff"


class Payout(FSMModelMixin, TimeStamped):
    """Money going back to the order's original payment method, exactly once per key."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payouts")
    amount = _money_field()
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=20, choices=PaymentMethod.choices)
    payment_reference = models.CharField(max_length=128)
    # Derived from what the payout pays ("cancel:<order>", "refund:<case>", "dispute:<id>"), so a
    # duplicated request or task collides here instead of paying again.
    idempotency_key = models.CharField(max_length=120, unique=True)
    purpose = models.CharField(max_length=20)
    subject_id = models.UUIDField(null=True, blank=True)
    gateway_reference = models.CharField(max_length=128, blank=True)
    status = FSMField(default=PayoutStatus.PENDING, choices=PayoutStatus.choices, protected=True)
    attempts = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=300, blank=True)
    # The gateway said a definite no (docs/rules.md, Payouts): no automatic retry, and the next
    # (staff) retry must send a new key, since Stripe replays a key's first answer.
    failure_definite = models.BooleanField(default=False)
    # How many times staff retried after a definite failure: the gateway key's suffix.
    key_generation = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker holds the payout until then; a crashed worker's claim simply runs out.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When the current gateway key was first sent: Stripe forgets a key after 24 hours, so an
    # outcome still unknown by then is looked for among the payment's refunds before any new
    # request (docs/rules.md, Payouts → Stripe). A staff retry with a new key clears it.
    key_sent_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    overdue_alerted_at = models.DateTimeField(null=True, blank=True)
    # Staff paid it outside the portal (docs/rules.md, Payouts): where the money went (a PayPal
    # transaction id, a bank transfer reference), why, and who said so.
    paid_outside_reference = SingleLineCharField(max_length=200, blank=True)
    paid_outside_note = MultiLineTextField(blank=True)
    paid_outside_by = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Set while the order's payment is in a chargeback (docs/rules.md, Chargebacks): no worker
    # claims it and the re-dispatch skips it, until the chargeback is won (cleared, sent) or
    # lost (cancelled).
    held_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "orders_payout"  # the table predates this app (see docs/architecture.md)
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="payout_unsettled_idx",
                condition=Q(status__in=["pending", "failed"]),
            ),
            # A webhook finds its payout by Stripe's refund id.
            models.Index(
                fields=["gateway_reference"],
                name="payout_gateway_reference_idx",
                condition=~Q(gateway_reference=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} → {self.payment_method} ({self.status})"

    @property
    def gateway_key(self) -> str:
        """The idempotency key the gateway sees: the payout's own, then `<key>:<n>` after the
        n-th staff retry of a definite failure. Retries of an unknown outcome keep it."""
        if self.key_generation == 0:
            return self.idempotency_key
        return f"{self.idempotency_key}:{self.key_generation}"

    @transition(field=status, source=PayoutStatus.PENDING, target=PayoutStatus.SUCCEEDED)
    def succeed(self, *, gateway_reference: str, at) -> None:  # type: ignore[no-untyped-def]
        self.gateway_reference = gateway_reference
        self.succeeded_at = at
        self.failure_reason = ""
        self.failure_definite = False
        self.next_attempt_at = None
        self.claimed_until = None

    @transition(field=status, source=PayoutStatus.PENDING, target=PayoutStatus.FAILED)
    def fail(self, *, reason: str, next_attempt_at, definite: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.failure_reason = reason[:300]
        self.failure_definite = definite
        # A definite failure waits for staff: the re-dispatch never picks it up.
        self.next_attempt_at = None if definite else next_attempt_at
        self.claimed_until = None

    @transition(field=status, source=PayoutStatus.PENDING, target=PayoutStatus.AWAITING_STAFF)
    def await_staff(self, *, reason: str) -> None:
        self.failure_reason = reason[:300]
        self.next_attempt_at = None
        self.claimed_until = None

    @transition(
        field=status,
        source=[PayoutStatus.AWAITING_STAFF, PayoutStatus.FAILED],
        target=PayoutStatus.SUCCEEDED,
    )
    def mark_paid_outside(self, *, actor: User, reference: str, note: str, at) -> None:  # type: ignore[no-untyped-def]
        self.paid_outside_reference = reference
        self.paid_outside_note = note
        self.paid_outside_by = actor
        self.succeeded_at = at
        self.failure_reason = ""
        self.failure_definite = False
        self.next_attempt_at = None
        self.claimed_until = None

    @transition(field=status, source=PayoutStatus.FAILED, target=PayoutStatus.PENDING)
    def retry(self, *, at) -> None:  # type: ignore[no-untyped-def]
        if self.failure_definite:
            # A new refund is asked for (a new key): the failed one is not read back again.
            self.key_generation += 1
            self.failure_definite = False
            self.gateway_reference = ""
            self.key_sent_at = None
        self.next_attempt_at = at

    @transition(
        field=status,
        source=[PayoutStatus.FAILED, PayoutStatus.AWAITING_STAFF],
        target=PayoutStatus.CANCELLED,
    )
    def cancel(self) -> None:
        self.next_attempt_at = None

    @transition(
        field=status,
        source=[PayoutStatus.PENDING, PayoutStatus.FAILED, PayoutStatus.AWAITING_STAFF],
        target=PayoutStatus.CANCELLED,
    )
    def cancel_for_chargeback(self) -> None:
        """The buyer's bank took the money back: this refund must never be paid now."""
        self.next_attempt_at = None
        self.claimed_until = None


class ChargebackStatus(models.TextChoices):
    OPEN = "open", "Open"  # the buyer's bank is deciding; the order's payouts are held
    WON = "won", "Won"  # the marketplace kept the money; held payouts go out
    LOST = "lost", "Lost"  # the bank took the money back; it counts as refunded


class Chargeback(FSMModelMixin, TimeStamped):
    """A buyer's dispute of the card payment with their bank, as Stripe reports it (docs/rules.md,
    Chargebacks). One row per Stripe dispute, whatever order its events arrive in."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    stripe_dispute_id = models.CharField(max_length=128, unique=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="chargebacks")
    amount = _money_field()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=60, blank=True)
    status = FSMField(
        default=ChargebackStatus.OPEN, choices=ChargebackStatus.choices, protected=True
    )
    # Stripe's own closing status ("won", "lost", "warning_closed", "charge_refunded"…).
    stripe_status = models.CharField(max_length=40, blank=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="chargeback_amount_positive"),
        ]
        indexes = [
            # "Is this order's payment in a chargeback now?": asked before every payout.
            models.Index(fields=["order"], name="chargeback_open_idx", condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return f"Chargeback {self.stripe_dispute_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == ChargebackStatus.OPEN

    @transition(field=status, source=ChargebackStatus.OPEN, target=ChargebackStatus.WON)
    def win(self, *, stripe_status: str, at) -> None:  # type: ignore[no-untyped-def]
        self.stripe_status = stripe_status
        self.closed_at = at

    @transition(field=status, source=ChargebackStatus.OPEN, target=ChargebackStatus.LOST)
    def lose(self, *, stripe_status: str, at) -> None:  # type: ignore[no-untyped-def]
        self.stripe_status = stripe_status
        self.closed_at = at


class GatewayRefund(models.Model):
    """The fake gateway's own ledger: what it refunded, once per idempotency key.

    Tests judge "paid once" by this table, not by our payout rows.
    """

    idempotency_key = models.CharField(max_length=120, unique=True)
    payment_reference = models.CharField(max_length=128)
    amount = _money_field()
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=64, unique=True)
    # pending until the fake "settles" it on the next call with the same key
    status = models.CharField(max_length=20)
    calls = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "orders_gatewayrefund"

    def __str__(self) -> str:
        return f"{self.reference}: {format_money(self.amount, self.currency)} ({self.status})"


class StripeEvent(models.Model):
    """Every Stripe event received, recorded in the transaction that handled it, so a
    redelivery does nothing and a crash mid-handling leaves it unrecorded for Stripe to send
    again (docs/architecture.md, Stripe webhooks)."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    # The id of the event's `data.object` (a refund, a dispute…).
    object_id = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField()  # Stripe's own instant of the event
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=60)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}: {self.outcome}"
