"""Audit events of disputes. Each kind names who is told (the payload is the outbox row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orders.events import ORDER_PAYLOAD_READS, event_build, event_save
from orders.models import Event, User

from .models import Dispute

# kind -> who must act or is affected (docs/rules.md, Notifications). The sweeps write the flag
# kinds in bulk.
NOTIFY: dict[str, tuple[str, ...]] = {
    "dispute.opened": ("buyer", "seller", "staff"),
    "dispute.statement_added": ("buyer",),
    "dispute.review_started": (),
    "dispute.assigned": (),
    "dispute.info_requested": ("buyer", "seller"),
    "dispute.info_answered": ("staff",),
    "dispute.message_posted": (),  # recipients depend on the author; see dispute_message_notify
    "dispute.decided": ("buyer", "seller"),
    "dispute.withdrawn": ("buyer", "seller"),
    "dispute.closed_by_chargeback": (),  # `chargeback.closed` tells everyone
    "dispute.statement_window_lapsed": ("staff",),
    "dispute.sla_target_passed": ("staff",),
    "dispute.sla_due_passed": ("staff", "buyer"),
}


def dispute_message_notify(author_role: str) -> tuple[str, ...]:
    """A message tells everyone else on the dispute; staff read the desk, not their inbox."""
    return {"buyer": ("seller",), "seller": ("buyer",)}.get(author_role, ("buyer", "seller"))


def dispute_payload(dispute: Dispute) -> dict[str, Any]:
    """What any notice about this dispute may show: amounts, deadlines and the decision."""
    return {
        "case_state": dispute.case.state,
        "desired_amount": str(dispute.desired_amount),
        "statement_by": dispute.statement_by,
        "decision_target": dispute.decision_target,
        "decision_due": dispute.decision_due,
        "outcome": dispute.outcome or None,
        "decided_amount": str(dispute.amount) if dispute.amount is not None else None,
        "rationale": dispute.rationale or None,
        "info_party": dispute.info_party or None,
        "info_question": dispute.info_question or None,
    }


# What `dispute_event` reads (see ORDER_PAYLOAD_READS).
DISPUTE_EVENT_READS = (
    "public_id",
    "state",
    "desired_amount",
    "statement_by",
    "decision_target",
    "decision_due",
    "outcome",
    "amount",
    "rationale",
    "info_party",
    "info_question",
    "case__public_id",
    "case__state",
    *(f"case__order__{name}" for name in ORDER_PAYLOAD_READS),
)


def dispute_event(
    dispute: Dispute,
    *,
    kind: str,
    actor: User | None,
    from_state: str,
    note: str = "",
    at: datetime | None = None,
    notify: tuple[str, ...] | None = None,
    **extra: Any,
) -> Event:
    """The event of a dispute's step, unsaved: the services save it (`event_dispute`), the SLA
    sweeps write it in bulk; one payload either way."""
    return event_build(
        order=dispute.case.order,
        kind=kind,
        actor=actor,
        from_state=from_state,
        to_state=dispute.state,
        note=note,
        notify=NOTIFY[kind] if notify is None else notify,
        case_id=dispute.case.public_id,
        dispute_id=dispute.public_id,
        at=at,
        **dispute_payload(dispute),
        **extra,
    )


def event_dispute(**fields: Any) -> Event:
    return event_save(dispute_event(**fields))
