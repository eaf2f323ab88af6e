"""Audit events of refund cases. Each kind names who is told (the payload is the outbox row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orders.events import ORDER_PAYLOAD_READS, event_build, event_record, event_save
from orders.models import Event, User

from .models import Evidence, RefundCase

# kind -> who must act or is affected (docs/rules.md, Notifications). Sweeps write the same kinds in
# bulk.
NOTIFY: dict[str, tuple[str, ...]] = {
    "refund.requested": ("seller",),
    "refund.accepted": ("buyer",),
    "refund.auto_accepted": ("buyer", "seller"),
    "refund.offer_made": ("buyer",),
    "refund.offer_accepted": ("seller",),
    "refund.offer_declined": ("buyer", "seller"),
    "refund.offer_lapsed": ("buyer", "seller"),
    "refund.rejected": ("buyer",),
    "refund.return_shipped": ("seller",),
    "refund.return_expired": ("buyer", "seller"),
    "refund.return_confirmed": ("buyer",),
    "refund.return_auto_confirmed": ("buyer", "seller"),
    "refund.withdrawn": ("buyer", "seller"),
    "refund.refunded": (),
    "refund.escalated": (),
    "refund.dispute_resolved": (),
    "refund.payout_blocked": ("staff",),
    "refund.closed_by_chargeback": (),  # `chargeback.closed` tells everyone
    "reminder.seller_response": ("seller",),
    "reminder.return_shipping": ("buyer",),
    "reminder.dispute_window": ("buyer",),
    # The other party of whoever added the file (both when staff added it).
    "evidence.added": ("buyer", "seller"),
}


def case_payload(case: RefundCase) -> dict[str, Any]:
    """What any notice about this case may show: numbers, amounts and the running deadlines."""
    return {
        "reason": case.reason,
        "reason_label": case.get_reason_display(),
        "amount": str(case.amount),
        "approved_amount": str(case.approved_amount) if case.approved_amount is not None else None,
        "offer_amount": str(case.offer_amount) if case.offer_amount is not None else None,
        "return_number": case.issued_return_number,
        "closed_reason": case.closed_reason or None,
        "closed_reason_label": case.get_closed_reason_display() if case.closed_reason else None,
        "respond_by": case.respond_by,
        "offer_by": case.offer_by,
        "return_by": case.return_by,
        "confirm_by": case.confirm_by,
        "dispute_by": case.dispute_by,
        "reject_reason": case.reject_reason or None,
    }


# What `case_event` reads (see ORDER_PAYLOAD_READS).
CASE_EVENT_READS = (
    "public_id",
    "state",
    "reason",
    "amount",
    "approved_amount",
    "offer_amount",
    "return_number",
    "rma_issued_at",
    "closed_reason",
    "respond_by",
    "offer_by",
    "return_by",
    "confirm_by",
    "dispute_by",
    "reject_reason",
    *(f"order__{name}" for name in ORDER_PAYLOAD_READS),
)


def case_event(
    case: RefundCase,
    *,
    kind: str,
    actor: User | None,
    from_state: str,
    note: str = "",
    at: datetime | None = None,
    **extra: Any,
) -> Event:
    """The event of a case's transition, unsaved: the services save it (`event_case`), the
    sweeps write it in bulk; one payload either way."""
    return event_build(
        order=case.order,
        kind=kind,
        actor=actor,
        from_state=from_state,
        to_state=case.state,
        note=note,
        notify=NOTIFY[kind],
        case_id=case.public_id,
        at=at,
        **case_payload(case),
        **extra,
    )


def event_case(**fields: Any) -> Event:
    return event_save(case_event(**fields))


def event_evidence_added(
    *, case: RefundCase, evidence: Evidence, actor: User, actor_role: str
) -> Event:
    """Not a transition: the case keeps its state; the other party is told (docs/rules.md, Evidence
    files; Notifications)."""
    return event_record(
        order=case.order,
        kind="evidence.added",
        actor=actor,
        notify=tuple(role for role in NOTIFY["evidence.added"] if role != actor_role),
        case_id=case.public_id,
        evidence_id=evidence.public_id,
        author_role=actor_role,
        file_name=evidence.original_name,
        content_type=evidence.content_type,
        size=evidence.size,
        evidence_kind=evidence.kind,
        for_dispute=evidence.for_dispute,
    )
