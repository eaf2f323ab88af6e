"""Refund cases: the state machine of docs/rules.md (Case transitions), evidence files of
docs/rules.md (Evidence files)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import F, Q
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from kernel import windows
from kernel.sweeps import AT, After, OnLocalDay, Outcome, changes, transition_apply
from kernel.text import MultiLineTextField, SingleLineCharField
from orders.models import Order, OrderItem, TimeStamped, User, _money_field
from payouts.models import Payout


class Reason(models.TextChoices):
    CHANGED_MIND = "changed_mind", "Changed my mind"
    NOT_RECEIVED = "not_received", "Item not received"
    NOT_AS_DESCRIBED = "not_as_described", "Not as described"
    DAMAGED = "damaged", "Arrived damaged"
    WRONG_ITEM = "wrong_item", "Wrong item sent"
    OTHER = "other", "Other"


class State(models.TextChoices):
    REQUESTED = "requested", "Requested"  # filed; the seller has 48 h to answer
    OFFER_MADE = "offer_made", "Partial offer made"  # the buyer has 48 h to take it
    AWAITING_RETURN = "awaiting_return", "Awaiting return"  # RMA issued; 7 days to ship it
    RETURN_SHIPPED = "return_shipped", "Return shipped"  # seller has 14 days to confirm receipt
    REFUND_PENDING = "refund_pending", "Refund pending"  # approved; the payout is under way
    REFUNDED = "refunded", "Refunded"  # the gateway paid the buyer back (final)
    CLOSED = "closed", "Closed"  # ended without a refund; see closed_reason
    ESCALATED = "escalated", "Escalated"  # a dispute is open; neither party can move it


class ClosedReason(models.TextChoices):
    REJECTED = "rejected", "Rejected by the seller"
    OFFER_DECLINED = "offer_declined", "Offer declined or lapsed"
    EXPIRED = "expired", "Return not shipped in time"
    WITHDRAWN = "withdrawn", "Withdrawn by the buyer"
    DISPUTE_LOST = "dispute_lost", "Dispute decided for the seller"
    DISPUTE_WITHDRAWN = "dispute_withdrawn", "Dispute withdrawn"
    CHARGEBACK = "chargeback", "The buyer's bank took the payment back"


OPEN_STATES = [
    State.REQUESTED,
    State.OFFER_MADE,
    State.AWAITING_RETURN,
    State.RETURN_SHIPPED,
    State.REFUND_PENDING,
    State.ESCALATED,
]
DISPUTABLE_REASONS = [
    ClosedReason.REJECTED,
    ClosedReason.WITHDRAWN,
    ClosedReason.EXPIRED,
    ClosedReason.OFFER_DECLINED,
]
# Unambiguous characters only: the number is read aloud and copied onto parcels.
RMA_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def _disputable(case: models.Model) -> bool:
    """Only a case closed as rejected, withdrawn, expired or offer_declined may be disputed."""
    return getattr(case, "closed_reason", "") in DISPUTABLE_REASONS


def _return_by(rma_issued_at: datetime) -> datetime:
    return windows.return_by(rma_issued_at=rma_issued_at)


def _closing(reason: str) -> dict[str, Any]:
    """Closed for a reason that may be disputed: the dispute window runs from the close."""
    return changes(
        Outcome(
            values={"closed_reason": reason, "closed_at": AT, "dispute_by": After("dispute_filing")}
        )
    )


# The return arrived (confirmed by the seller or by their silence): the refund is due.
_CONFIRMED = changes(Outcome(values={"approved_at": AT}))


def new_return_number() -> str:
    return "RMA-" + "".join(secrets.choice(RMA_ALPHABET) for _ in range(8))


class RefundCase(FSMModelMixin, TimeStamped):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refund_cases")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    description = MultiLineTextField(max_length=5000, blank=True)
    amount = _money_field()  # what the buyer asked for
    currency = models.CharField(max_length=3)
    return_item = models.BooleanField(default=False)
    state = FSMField(default=State.REQUESTED, choices=State.choices, protected=True)
    closed_reason = models.CharField(max_length=20, choices=ClosedReason.choices, blank=True)
    reject_reason = MultiLineTextField(max_length=2000, blank=True)

    # Deadlines, stored when their state is entered (docs/architecture.md, Where time lives); null
    # where they do not apply.
    respond_by = models.DateTimeField()
    respond_reminded_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    auto_accepted = models.BooleanField(default=False)
    offer_amount = _money_field(null=True, blank=True)
    offer_by = models.DateTimeField(null=True, blank=True)
    # Reserved when a return is asked for, issued (and shown) when the return is approved.
    return_number = models.CharField(max_length=16, unique=True, null=True, blank=True)
    rma_issued_at = models.DateTimeField(null=True, blank=True)
    return_by = models.DateTimeField(null=True, blank=True)
    return_reminded_at = models.DateTimeField(null=True, blank=True)
    return_carrier = SingleLineCharField(max_length=80, blank=True)
    return_tracking_number = SingleLineCharField(max_length=80, blank=True)
    return_shipped_at = models.DateTimeField(null=True, blank=True)
    confirm_by = models.DateTimeField(null=True, blank=True)
    approved_amount = _money_field(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    payout = models.OneToOneField(
        Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="refund_case"
    )
    # Set when the payout would exceed what the order can still refund: held for staff.
    payout_blocked_at = models.DateTimeField(null=True, blank=True)
    refunded_amount = _money_field(default=Decimal("0"))
    refunded_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    dispute_by = models.DateTimeField(null=True, blank=True)
    dispute_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="case_amount_positive"),
            models.CheckConstraint(
                condition=Q(offer_amount__isnull=True) | Q(offer_amount__gt=0),
                name="case_offer_positive",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=F("amount"))
                | Q(approved_amount__isnull=False, refunded_amount__lte=F("approved_amount")),
                name="case_refund_within_approved",
            ),
            # At most one open case per order (docs/rules.md, Filing a request), held by the
            # database under concurrency.
            models.UniqueConstraint(
                fields=["order"], condition=Q(state__in=OPEN_STATES), name="one_open_case_per_order"
            ),
        ]
        # Partial indexes: each periodic scan reads only the rows in its state
        # (docs/architecture.md, The sweep engine).
        indexes = [
            models.Index(
                fields=["respond_by"], name="case_requested_due_idx", condition=Q(state="requested")
            ),
            models.Index(
                fields=["offer_by"], name="case_offer_due_idx", condition=Q(state="offer_made")
            ),
            models.Index(
                fields=["return_by"],
                name="case_return_due_idx",
                condition=Q(state="awaiting_return"),
            ),
            models.Index(
                fields=["confirm_by"],
                name="case_confirm_due_idx",
                condition=Q(state="return_shipped"),
            ),
            models.Index(
                fields=["dispute_by"],
                name="case_dispute_window_idx",
                condition=Q(state="closed", dispute_reminded_at__isnull=True),
            ),
            models.Index(
                fields=["approved_at"],
                name="case_refund_pending_idx",
                condition=Q(state="refund_pending"),
            ),
            # The payout re-dispatch: approved cases still without a payout and not held.
            models.Index(
                fields=["approved_at"],
                name="case_awaiting_payout_idx",
                condition=Q(
                    state="refund_pending", payout__isnull=True, payout_blocked_at__isnull=True
                ),
            ),
            models.Index(fields=["order", "-created_at"]),
            models.Index(fields=["state", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"Refund {self.short_id} on {self.order_id}"

    @property
    def short_id(self) -> str:
        return str(self.public_id)[:8]

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def issued_return_number(self) -> str | None:
        return self.return_number if self.rma_issued_at else None

    @property
    def seller_id(self) -> int:
        return self.order.shop.owner_id

    def deadline(self) -> tuple[str, datetime] | None:
        """The one deadline running now, and who it binds."""
        return {
            State.REQUESTED: ("seller", self.respond_by),
            State.OFFER_MADE: ("buyer", self.offer_by),
            State.AWAITING_RETURN: ("buyer", self.return_by),
            State.RETURN_SHIPPED: ("seller", self.confirm_by),
            State.CLOSED: ("buyer", self.dispute_by)
            if self.closed_reason in DISPUTABLE_REASONS
            else None,
        }.get(self.state)  # type: ignore[return-value]

    # --- transitions: source, target and the fields that change with the state --------------

    def _approve(self, amount: Decimal, at: datetime) -> str:
        self.approved_amount = amount
        self.answered_at = self.answered_at or at
        if self.return_item:
            self.rma_issued_at = at
            self.return_by = windows.return_by(rma_issued_at=at)
            return State.AWAITING_RETURN
        self.approved_at = at
        return State.REFUND_PENDING

    @transition(
        field=state,
        source=State.REQUESTED,
        target=RETURN_VALUE(State.AWAITING_RETURN, State.REFUND_PENDING),
    )
    def accept(self, *, at: datetime) -> str:
        return self._approve(self.amount, at)

    @transition(
        field=state,
        source=State.REQUESTED,
        target=RETURN_VALUE(State.AWAITING_RETURN, State.REFUND_PENDING),
        custom=changes(
            Outcome(
                when={"return_item": True},
                target=State.AWAITING_RETURN,
                values={
                    "auto_accepted": True,
                    "approved_amount": F("amount"),
                    "rma_issued_at": AT,
                    "return_by": OnLocalDay(_return_by),
                },
            ),
            Outcome(
                target=State.REFUND_PENDING,
                values={"auto_accepted": True, "approved_amount": F("amount"), "approved_at": AT},
            ),
        ),
    )
    def auto_accept(self, *, at: datetime) -> str:
        """The seller let `respond_by` pass: the buyer is protected (docs/rules.md). The deadline
        sweep applies the same declaration to every due case at once."""
        return transition_apply(self, "auto_accept", at=at)

    @transition(field=state, source=State.REQUESTED, target=State.OFFER_MADE)
    def offer(self, *, amount: Decimal, at: datetime) -> None:
        self.offer_amount = amount
        self.offer_by = windows.offer_answer_by(offered_at=at)
        self.answered_at = at

    @transition(field=state, source=State.OFFER_MADE, target=State.REFUND_PENDING)
    def accept_offer(self, *, at: datetime) -> None:
        self.approved_amount = self.offer_amount
        self.approved_at = at

    def _close(self, reason: str, at: datetime) -> None:
        self.closed_reason = reason
        self.closed_at = at
        self.dispute_by = windows.dispute_by(closed_at=at) if reason in DISPUTABLE_REASONS else None

    @transition(
        field=state,
        source=State.OFFER_MADE,
        target=State.CLOSED,
        custom=_closing(ClosedReason.OFFER_DECLINED),
    )
    def decline_offer(self, *, at: datetime) -> None:
        transition_apply(self, "decline_offer", at=at)

    @transition(
        field=state,
        source=State.OFFER_MADE,
        target=State.CLOSED,
        custom=_closing(ClosedReason.OFFER_DECLINED),
    )
    def lapse_offer(self, *, at: datetime) -> None:
        transition_apply(self, "lapse_offer", at=at)

    @transition(field=state, source=State.REQUESTED, target=State.CLOSED)
    def reject(self, *, reason: str, at: datetime) -> None:
        self.reject_reason = reason
        self.answered_at = at
        self._close(ClosedReason.REJECTED, at)

    @transition(field=state, source=State.AWAITING_RETURN, target=State.RETURN_SHIPPED)
    def ship_return(self, *, carrier: str, tracking_number: str, at: datetime) -> None:
        self.return_carrier = carrier
        self.return_tracking_number = tracking_number
        self.return_shipped_at = at
        self.confirm_by = windows.confirm_by(return_shipped_at=at)

    @transition(
        field=state,
        source=State.AWAITING_RETURN,
        target=State.CLOSED,
        custom=_closing(ClosedReason.EXPIRED),
    )
    def expire_return(self, *, at: datetime) -> None:
        transition_apply(self, "expire_return", at=at)

    @transition(
        field=state,
        source=State.RETURN_SHIPPED,
        target=State.REFUND_PENDING,
        custom=_CONFIRMED,
    )
    def confirm_return(self, *, at: datetime) -> None:
        transition_apply(self, "confirm_return", at=at)

    @transition(
        field=state,
        source=State.RETURN_SHIPPED,
        target=State.REFUND_PENDING,
        custom=_CONFIRMED,
    )
    def auto_confirm_return(self, *, at: datetime) -> None:
        transition_apply(self, "auto_confirm_return", at=at)

    @transition(field=state, source=State.REFUND_PENDING, target=State.REFUNDED)
    def mark_refunded(self, *, amount: Decimal, at: datetime) -> None:
        self.refunded_amount = amount
        self.refunded_at = at

    @transition(
        field=state,
        source=[State.REQUESTED, State.OFFER_MADE, State.AWAITING_RETURN],
        target=State.CLOSED,
    )
    def withdraw(self, *, at: datetime) -> None:
        self._close(ClosedReason.WITHDRAWN, at)

    @transition(field=state, source=OPEN_STATES, target=State.CLOSED)
    def close_for_chargeback(self, *, at: datetime) -> None:
        """A chargeback the marketplace lost refunded the buyer through their bank (final)."""
        self._close(ClosedReason.CHARGEBACK, at)

    @transition(field=state, source=State.CLOSED, target=State.ESCALATED, conditions=[_disputable])
    def escalate(self) -> None:
        pass

    @transition(field=state, source=State.ESCALATED, target=State.REFUND_PENDING)
    def resolve_for_buyer(self, *, amount: Decimal, at: datetime) -> None:
        self.approved_amount = amount
        self.approved_at = at
        self.closed_reason = ""
        self.closed_at = None
        self.dispute_by = None

    @transition(field=state, source=State.ESCALATED, target=State.CLOSED)
    def resolve_for_seller(self, *, at: datetime) -> None:
        self._close(ClosedReason.DISPUTE_LOST, at)

    @transition(field=state, source=State.ESCALATED, target=State.CLOSED)
    def dispute_withdrawn(self, *, at: datetime) -> None:
        self._close(ClosedReason.DISPUTE_WITHDRAWN, at)


class RefundItem(models.Model):
    case = models.ForeignKey(RefundCase, on_delete=models.CASCADE, related_name="items")
    order_item = models.ForeignKey(OrderItem, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="refund_item_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × item {self.order_item_id}"


def private_storage() -> FileSystemStorage:
    """Outside the static and media URL space: files leave only through the checked view."""
    return FileSystemStorage(location=settings.PRIVATE_STORAGE_ROOT, base_url=None)


def evidence_path(instance: Evidence, filename: str) -> str:
    # Random name; the uploaded name is kept only as data (never as a path).
    return f"evidence/{instance.case.public_id}/{uuid.uuid4().hex}"


class Evidence(models.Model):
    """A file a party attached to a case or its dispute; served only through a checked view."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey(RefundCase, on_delete=models.CASCADE, related_name="evidence")
    # True: attached to the dispute on this case (its own 10-file allowance).
    for_dispute = models.BooleanField(default=False)
    kind = models.CharField(max_length=30, blank=True)  # receipt, shipping, chat, photo, other
    uploaded_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    file = models.FileField(upload_to=evidence_path, storage=private_storage, max_length=200)
    original_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["case", "for_dispute"])]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
