"""The audit events of payouts and of the cancellations that create them (one function a kind)."""

from __future__ import annotations

from datetime import datetime

from orders.events import event_record
from orders.models import Event, Order, User

from .models import Payout


def event_order_cancelled(*, order: Order, actor: User, payout: Payout) -> Event:
    return event_record(
        order=order,
        kind="order.cancelled",
        actor=actor,
        from_state="paid",
        to_state="cancelled",
        note=order.cancel_reason,
        notify=("buyer", "seller"),
        amount=str(payout.amount),
        reason=order.cancel_reason,
        payout_id=payout.public_id,
    )


def event_payout_created(*, payout: Payout, actor: User | None) -> Event:
    return event_record(
        order=payout.order,
        kind="payout.created",
        actor=actor,
        to_state="pending",
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        case_id=payout.subject_id if payout.purpose == "refund" else None,
    )


def event_payout_succeeded(*, payout: Payout, at: datetime) -> Event:
    return event_record(
        order=payout.order,
        kind="payout.succeeded",
        actor=None,
        from_state="pending",
        to_state="succeeded",
        notify=("buyer", "seller"),
        at=at,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        case_id=payout.subject_id if payout.purpose == "refund" else None,
    )


def event_payout_failed(*, payout: Payout, at: datetime) -> Event:
    return event_record(
        order=payout.order,
        kind="payout.failed",
        actor=None,
        from_state="pending",
        to_state="failed",
        note=payout.failure_reason,
        notify=("staff",),
        at=at,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        attempts=payout.attempts,
        reason=payout.failure_reason,
    )


def event_payout_staff_action(*, payout: Payout, actor: User, kind: str, from_state: str) -> Event:
    return event_record(
        order=payout.order,
        kind=kind,
        actor=actor,
        from_state=from_state,
        to_state=payout.status,
        amount=str(payout.amount),
        payout_id=payout.public_id,
    )
