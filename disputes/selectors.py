"""Reads of the disputes app; every dispute a user asks for is fetched through them
(docs/architecture.md, Permissions).

A dispute the user may not see (neither a party nor staff) is simply not found: 404.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.urls import reverse

from orders.models import Event, Message, Order, Shop, User
from refunds.models import Evidence, RefundCase
from refunds.models import State as CaseState
from refunds.selectors import refund_evidence, refund_messages

from .models import UNDECIDED_STATES, Dispute, DisputeMessage, DisputeState

DISPUTE_RELATED = (
    "case",
    "case__order",
    "case__order__buyer",
    "case__order__shop",
    "case__order__shop__owner",
    "assigned_to",
    "decided_by",
)


def dispute_list_for_user(*, user: User, state: str | None = None) -> QuerySet[Dispute]:
    qs = Dispute.objects.select_related(*DISPUTE_RELATED)
    if not user.is_staff:
        qs = qs.filter(Q(case__order__buyer=user) | Q(case__order__shop__owner=user))
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-created_at", "-id")


def dispute_get_for_user(*, user: User, public_id: UUID | str) -> Dispute:
    try:
        return dispute_list_for_user(user=user).get(public_id=UUID(str(public_id)))
    except (Dispute.DoesNotExist, ValueError) as exc:
        raise Http404("No such dispute.") from exc


def dispute_transcript(*, dispute: Dispute) -> QuerySet[Message]:
    """The buyer-seller thread of the order, attached to the dispute automatically (docs/rules.md,
    Disputes)."""
    return refund_messages(case=dispute.case)


def dispute_messages(*, dispute: Dispute) -> QuerySet[DisputeMessage]:
    return DisputeMessage.objects.filter(dispute=dispute).select_related("author")


def dispute_evidence(*, dispute: Dispute) -> QuerySet[Evidence]:
    return refund_evidence(case=dispute.case, for_dispute=True)


def dispute_case_evidence(*, dispute: Dispute) -> QuerySet[Evidence]:
    """The files filed with the refund request itself (the case's own allowance)."""
    return refund_evidence(case=dispute.case, for_dispute=False)


def evidence_url(evidence: Evidence) -> str:
    """The refunds app's permission-checked download view of the file."""
    return reverse("refunds_files:evidence-download", kwargs={"evidence_id": evidence.public_id})


def dispute_events(*, dispute: Dispute) -> QuerySet[Event]:
    """The audit trail of the dispute and of the case it appeals, oldest first."""
    return (
        Event.objects.filter(Q(dispute_id=dispute.public_id) | Q(case_id=dispute.case.public_id))
        .select_related("actor")
        .order_by("created_at", "id")
    )


def dispute_queue(*, now: datetime) -> QuerySet[Dispute]:
    """The staff queue by SLA: past the hard deadline first, then past the target, then the
    rest of the undecided ones; each group by hard deadline, soonest first; decided last."""
    undecided = Q(state__in=UNDECIDED_STATES)
    return Dispute.objects.select_related(*DISPUTE_RELATED).annotate(
        sla_rank=Case(
            When(undecided & Q(decision_due__lt=now), then=Value(0)),
            When(undecided & Q(decision_target__lt=now), then=Value(1)),
            When(undecided, then=Value(2)),
            default=Value(3),
            output_field=IntegerField(),
        )
    )


SLA_ORDERING: tuple[Any, ...] = ("sla_rank", "decision_due", "id")


# --- the seller dashboard ----------------------------------------------------------------------

# Open cases of the seller's shops: their turn in the first two, the buyer's in the others.
_SELLER_TURN = (CaseState.REQUESTED, CaseState.RETURN_SHIPPED)
_BUYER_TURN = (CaseState.OFFER_MADE, CaseState.AWAITING_RETURN)


@dataclass
class DashboardRow:
    """One line of the seller dashboard; its words are chosen by `what` in the template: a
    case's state, or `statement` / `info` for a dispute that waits on the seller."""

    what: str
    until: datetime | None
    order: Order
    case: RefundCase | None = None
    dispute: Dispute | None = None


@dataclass
class SellerDashboard:
    shops: list[Shop]
    todo: list[DashboardRow] = field(default_factory=list)  # the seller's turn
    waiting: list[DashboardRow] = field(default_factory=list)  # the buyer's turn

    @property
    def counts(self) -> Counter[str]:
        """How many rows of each kind wait on the seller (0 for a kind with none)."""
        return Counter(row.what for row in self.todo)


def seller_dashboard_read(*, user: User) -> SellerDashboard:
    """What needs the seller now, soonest deadline first (no deadline last), and what waits on
    the buyer: three queries whatever the number of rows (shops, open cases, disputes)."""
    board = SellerDashboard(shops=list(user.shops.order_by("id")))
    if not board.shops:
        return board
    cases = RefundCase.objects.select_related("order", "order__buyer").filter(
        order__shop__owner=user, state__in=_SELLER_TURN + _BUYER_TURN
    )
    for case in cases:
        running = case.deadline()
        row = DashboardRow(case.state, running[1] if running else None, case.order, case=case)
        (board.todo if case.state in _SELLER_TURN else board.waiting).append(row)
    disputes = Dispute.objects.select_related("case__order__buyer").filter(
        case__order__shop__owner=user, state__in=UNDECIDED_STATES
    )
    for dispute in disputes:
        order = dispute.case.order
        if dispute.seller_statement_at is None:
            board.todo.append(
                DashboardRow("statement", dispute.statement_by, order, dispute=dispute)
            )
        if dispute.state == DisputeState.INFO_REQUESTED and dispute.info_party == "seller":
            board.todo.append(DashboardRow("info", dispute.decision_due, order, dispute=dispute))
    for rows in (board.todo, board.waiting):
        rows.sort(
            key=lambda row: (row.until is None, row.until or datetime.min.replace(tzinfo=UTC))
        )
    return board
