"""Reads of the disputes app; every dispute a user asks for is fetched through them (STYLE §8).

A dispute the user may not see (neither a party nor staff) is simply not found: 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404
from django.urls import reverse
from django_fsm import can_proceed

from orders.models import Event, Message, User
from refunds.models import Evidence
from refunds.rules import refund_author_role
from refunds.selectors import refund_evidence, refund_messages

from .models import UNDECIDED_STATES, Dispute, DisputeMessage

DISPUTE_RELATED = (
    "case",
    "case__order",
    "case__order__buyer",
    "case__order__shop",
    "case__order__shop__owner",
    "assigned_to",
    "decided_by",
)


# Who may take each action on a dispute; whether it is possible now depends on the state.
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "statement": ("seller",),
    "message": ("buyer", "seller", "staff"),
    "evidence": ("buyer", "seller", "staff"),
    "withdraw": ("buyer",),
    "assign": ("staff",),
    "start_review": ("staff",),
    "request_info": ("staff",),
    "decide": ("staff",),
}
ACTION_WORDS = {
    "statement": "add the seller's statement",
    "message": "write on this dispute",
    "evidence": "add evidence to this dispute",
    "withdraw": "withdraw this dispute",
    "assign": "assign disputes",
    "start_review": "review disputes",
    "request_info": "ask for information",
    "decide": "decide disputes",
}


def dispute_role_of(*, dispute: Dispute, user: User) -> str:
    """buyer | seller | staff | other. A staff member who is a party acts as that party."""
    order = dispute.case.order
    if order.buyer_id == user.pk:
        return "buyer"
    if order.shop.owner_id == user.pk:
        return "seller"
    return "staff" if user.is_staff and user.is_active else "other"


def dispute_author_role(author_id: int, dispute: Dispute) -> str:
    """Who wrote or uploaded something on the dispute: buyer, seller, or else staff."""
    return refund_author_role(author_id, dispute.case)


def dispute_can_decide_now(*, dispute: Dispute, now: datetime) -> bool:
    """Once the seller has made a statement or its 48 h have passed (SPEC §6)."""
    return dispute.seller_statement_at is not None or now > dispute.statement_by


def dispute_actions(*, dispute: Dispute, user: User, now: datetime) -> list[str]:
    """What the viewer may do on the dispute now (the API and pages show these)."""
    role = dispute_role_of(dispute=dispute, user=user)
    undecided = dispute.state in UNDECIDED_STATES
    possible = {
        "statement": undecided and dispute.seller_statement_at is None,
        "message": undecided,
        "evidence": undecided,
        "withdraw": can_proceed(dispute.withdraw),
        "assign": undecided,
        # The transitions' own source states (django-fsm), not a copy of them.
        "start_review": can_proceed(dispute.start_review),
        "request_info": can_proceed(dispute.request_info),
        "decide": undecided and dispute_can_decide_now(dispute=dispute, now=now),
    }
    return [action for action, roles in ACTION_ROLES.items() if role in roles and possible[action]]


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
    """The buyer-seller thread of the order, attached to the dispute automatically (SPEC §6)."""
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
