"""Disputes (docs/rules.md, Disputes): the buyer appeals a closed refund case and staff decide
it."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from kernel.text import MultiLineTextField, SingleLineCharField
from orders.models import TimeStamped, User, _money_field
from refunds.models import RefundCase


class DisputeState(models.TextChoices):
    OPEN = "open", "Open"  # filed by the buyer; the seller has 48 h for a statement
    UNDER_REVIEW = "under_review", "Under review"  # a staff member is working it
    INFO_REQUESTED = "info_requested", "Information requested"  # waiting for one party's answer
    RESOLVED_BUYER = "resolved_buyer", "Resolved for the buyer"  # decided; the amount is paid back
    RESOLVED_SELLER = "resolved_seller", "Resolved for the seller"  # decided; nothing is paid
    WITHDRAWN = "withdrawn", "Withdrawn"  # the buyer gave up the dispute (final)
    # The buyer's bank took the payment back in a chargeback the marketplace lost (final).
    CHARGEBACK = "chargeback", "Closed: the bank took the payment back"


# Staff may decide from any of these (docs/rules.md, Deciding a dispute); the SLA clocks run only
# while in one of them.
UNDECIDED_STATES = [DisputeState.OPEN, DisputeState.UNDER_REVIEW, DisputeState.INFO_REQUESTED]


class Party(models.TextChoices):
    BUYER = "buyer", "Buyer"
    SELLER = "seller", "Seller"


class Dispute(FSMModelMixin, TimeStamped):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # One dispute per case, held by the database (a concurrent second open hits this).
    case = models.OneToOneField(RefundCase, on_delete=models.PROTECT, related_name="dispute")
    state = FSMField(default=DisputeState.OPEN, choices=DisputeState.choices, protected=True)

    # What the buyer filed (the marketplace's own dispute form; docs/rules.md, Disputes).
    contact_name = SingleLineCharField(max_length=150)
    contact_email = models.EmailField()
    contact_phone = SingleLineCharField(max_length=32, blank=True)
    statement = MultiLineTextField(max_length=5000)
    desired_amount = _money_field()
    currency = models.CharField(max_length=3)

    seller_statement = MultiLineTextField(max_length=5000, blank=True)
    seller_statement_at = models.DateTimeField(null=True, blank=True)

    # Deadlines, stored when the dispute opens (docs/architecture.md, Where time lives): the
    # seller's statement window and the decision SLA in business days of the marketplace calendar.
    statement_by = models.DateTimeField()
    decision_target = models.DateTimeField()
    decision_due = models.DateTimeField()
    # Flags set once by the sweeps (not states): each notice goes out exactly once.
    statement_lapsed_at = models.DateTimeField(null=True, blank=True)
    target_flagged_at = models.DateTimeField(null=True, blank=True)
    due_flagged_at = models.DateTimeField(null=True, blank=True)

    assigned_to = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="disputes_assigned",
        limit_choices_to={"is_staff": True},
    )
    # The open question while `info_requested`; cleared when the party asked answers.
    info_party = models.CharField(max_length=10, choices=Party.choices, blank=True)
    info_question = MultiLineTextField(max_length=2000, blank=True)
    info_requested_at = models.DateTimeField(null=True, blank=True)

    outcome = models.CharField(max_length=10, choices=Party.choices, blank=True)
    amount = _money_field(null=True, blank=True)  # paid back when decided for the buyer
    rationale = MultiLineTextField(max_length=5000, blank=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(desired_amount__gt=0), name="dispute_desired_amount_positive"
            ),
            # The decision fields match the state: a decided dispute always says who won, why,
            # and (for the buyer) how much; an undecided one says nothing yet.
            models.CheckConstraint(
                condition=(
                    Q(state=DisputeState.RESOLVED_BUYER, outcome=Party.BUYER, amount__gt=0)
                    & ~Q(rationale="")
                )
                | (
                    Q(state=DisputeState.RESOLVED_SELLER, outcome=Party.SELLER, amount__isnull=True)
                    & ~Q(rationale="")
                )
                | Q(
                    state__in=[*UNDECIDED_STATES, DisputeState.WITHDRAWN, DisputeState.CHARGEBACK],
                    outcome="",
                    amount__isnull=True,
                ),
                name="dispute_decision_matches_state",
            ),
            models.CheckConstraint(
                condition=Q(state=DisputeState.INFO_REQUESTED) & ~Q(info_party="")
                | ~Q(state=DisputeState.INFO_REQUESTED) & Q(info_party=""),
                name="dispute_info_party_iff_info_requested",
            ),
        ]
        # Partial indexes: each sweep reads only the undecided rows it has not flagged yet.
        indexes = [
            models.Index(
                fields=["statement_by"],
                name="dispute_statement_due_idx",
                condition=Q(
                    state__in=UNDECIDED_STATES,
                    seller_statement_at__isnull=True,
                    statement_lapsed_at__isnull=True,
                ),
            ),
            models.Index(
                fields=["decision_target"],
                name="dispute_target_due_idx",
                condition=Q(state__in=UNDECIDED_STATES, target_flagged_at__isnull=True),
            ),
            models.Index(
                fields=["decision_due"],
                name="dispute_due_idx",
                condition=Q(state__in=UNDECIDED_STATES, due_flagged_at__isnull=True),
            ),
            # The staff queue: undecided disputes by hard deadline.
            models.Index(
                fields=["decision_due", "id"],
                name="dispute_queue_idx",
                condition=Q(state__in=UNDECIDED_STATES),
            ),
            models.Index(fields=["state", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.short_id}"

    @property
    def short_id(self) -> str:
        return str(self.public_id)[:8]

    @property
    def is_undecided(self) -> bool:
        return self.state in UNDECIDED_STATES

    def is_due_passed(self, now: datetime | None = None) -> bool:
        return self.is_undecided and (now or timezone.now()) > self.decision_due

    # --- transitions: source, target and the fields that change with the state --------------

    @transition(field=state, source=DisputeState.OPEN, target=DisputeState.UNDER_REVIEW)
    def start_review(self, *, staff: User) -> None:
        self.assigned_to = self.assigned_to or staff

    @transition(
        field=state,
        source=[DisputeState.OPEN, DisputeState.UNDER_REVIEW],
        target=DisputeState.INFO_REQUESTED,
    )
    def request_info(self, *, staff: User, party: str, question: str, at: datetime) -> None:
        # Asking a question is reviewing: from `open` it starts the review too.
        self.assigned_to = self.assigned_to or staff
        self.info_party = party
        self.info_question = question
        self.info_requested_at = at

    @transition(field=state, source=DisputeState.INFO_REQUESTED, target=DisputeState.UNDER_REVIEW)
    def answer_info(self) -> None:
        self.info_party = ""
        self.info_question = ""
        self.info_requested_at = None

    def _decide(
        self, *, outcome: str, amount: Decimal | None, rationale: str, staff: User, at: datetime
    ) -> None:
        self.outcome = outcome
        self.amount = amount
        self.rationale = rationale
        self.decided_by = staff
        self.decided_at = at
        self.info_party = ""
        self.info_question = ""
        self.info_requested_at = None

    @transition(field=state, source=UNDECIDED_STATES, target=DisputeState.RESOLVED_BUYER)
    def decide_for_buyer(
        self, *, amount: Decimal, rationale: str, staff: User, at: datetime
    ) -> None:
        self._decide(outcome=Party.BUYER, amount=amount, rationale=rationale, staff=staff, at=at)

    @transition(field=state, source=UNDECIDED_STATES, target=DisputeState.RESOLVED_SELLER)
    def decide_for_seller(self, *, rationale: str, staff: User, at: datetime) -> None:
        self._decide(outcome=Party.SELLER, amount=None, rationale=rationale, staff=staff, at=at)

    @transition(field=state, source=UNDECIDED_STATES, target=DisputeState.WITHDRAWN)
    def withdraw(self, *, at: datetime) -> None:
        self.withdrawn_at = at
        self.info_party = ""
        self.info_question = ""
        self.info_requested_at = None

    @transition(field=state, source=UNDECIDED_STATES, target=DisputeState.CHARGEBACK)
    def close_for_chargeback(self, *, at: datetime) -> None:
        self.info_party = ""
        self.info_question = ""
        self.info_requested_at = None


class DisputeMessage(models.Model):
    """The dispute's own thread: the parties and staff (the order thread is the transcript)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    body = MultiLineTextField(max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["dispute", "created_at"])]

    def __str__(self) -> str:
        return f"Message on {self.dispute_id} by {self.author_id}"
