"""The audit events of payouts and of the cancellations that create them (one function a kind)."""

from __future__ import annotations

from datetime import datetime

from kernel import windows
from orders.events import ORDER_PAYLOAD_READS, event_build, event_record
from orders.models import Event, Order, User

from .models import Chargeback, ChargebackStatus, Payout


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


def event_payout_succeeded(
    *, payout: Payout, at: datetime, from_state: str = "pending", actor: User | None = None
) -> Event:
    return event_record(
        order=payout.order,
        kind="payout.succeeded",
        actor=actor,
        from_state=from_state,
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
        definite=payout.failure_definite,
    )


def event_payout_key_refused(*, payout: Payout, at: datetime, alert: bool) -> Event:
    """The gateway refused our API key: every payout waits until staff fix it. Each waiting
    payout is in the audit trail; `alert` says whether this one emails staff (once an incident,
    not once a payout)."""
    return event_record(
        order=payout.order,
        kind="payout.key_refused",
        actor=None,
        from_state=payout.status,
        to_state=payout.status,
        note=payout.failure_reason,
        notify=("staff",) if alert else (),
        at=at,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        reason=payout.failure_reason,
    )


def event_payout_awaiting_staff(*, payout: Payout, at: datetime) -> Event:
    """The gateway cannot pay this payment method: staff pay outside the portal. Staff are told
    once, when the payout starts waiting; the buyer's case shows it is being paid by hand."""
    return event_record(
        order=payout.order,
        kind="payout.awaiting_staff",
        actor=None,
        from_state="pending",
        to_state=payout.status,
        note=payout.failure_reason,
        notify=("staff",),
        at=at,
        case_id=payout.subject_id if payout.purpose == "refund" else None,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        reason=payout.failure_reason,
    )


def event_payout_paid_outside(*, payout: Payout, actor: User, from_state: str) -> Event:
    """Staff paid it outside the portal: who, where the money went, and why. Not on the case's
    timeline (no case id): the note is the desk's, not the parties'; `payout.succeeded` tells
    them the money went back."""
    return event_record(
        order=payout.order,
        kind="payout.paid_outside",
        actor=actor,
        from_state=from_state,
        to_state=payout.status,
        note=payout.paid_outside_note,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        reference=payout.paid_outside_reference,
        paid_outside_note=payout.paid_outside_note,
    )


def event_payout_reversed(*, payout: Payout, reference: str, reason: str, at: datetime) -> Event:
    """The gateway failed a refund after it had succeeded: the payout stays succeeded (the
    refund did go out once), but the buyer has not been paid; staff pay another way."""
    return event_record(
        order=payout.order,
        kind="payout.reversed",
        actor=None,
        from_state=payout.status,
        to_state=payout.status,
        note=reason,
        notify=("staff",),
        at=at,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        case_id=payout.subject_id if payout.purpose == "refund" else None,
        reference=reference,
        reason=reason,
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


PAYOUT_OVERDUE_READS = (
    "public_id",
    "status",
    "amount",
    "purpose",
    "subject_id",
    "attempts",
    "failure_reason",
    "created_at",
    *(f"order__{name}" for name in ORDER_PAYLOAD_READS),
)


def payout_overdue_event(*, payout: Payout, at: datetime) -> Event:
    """Unpaid past the hard deadline: staff act, the buyer knows we are on it. Unsaved: only
    the payout sweep writes it, in bulk."""
    return event_build(
        order=payout.order,
        kind="payout.overdue",
        actor=None,
        from_state=payout.status,
        to_state=payout.status,
        notify=("buyer", "staff"),
        at=at,
        case_id=payout.subject_id if payout.purpose == "refund" else None,
        amount=str(payout.amount),
        payout_id=payout.public_id,
        purpose=payout.purpose,
        status=payout.status,
        attempts=payout.attempts,
        reason=payout.failure_reason,
        # A payout is created when its refund is approved.
        approved_at=payout.created_at,
        pay_by=windows.payout_hard(approved_at=payout.created_at),
    )


def _chargeback_fields(chargeback: Chargeback) -> dict[str, object]:
    # What #15's marketplace webhooks `chargeback.opened` / `chargeback.closed` carry, and what
    # the notices show (docs/rules.md, Chargebacks).
    return {
        "chargeback_id": chargeback.public_id,
        "stripe_dispute_id": chargeback.stripe_dispute_id,
        "amount": str(chargeback.amount),
        "currency": chargeback.currency,
        "chargeback_reason": chargeback.reason,
        "status": chargeback.status,
    }


def event_chargeback_opened(
    *, chargeback: Chargeback, refunds_paid: list[str], held: int, at: datetime
) -> Event:
    """Staff are alerted; a refund already paid on the order is evidence for the bank."""
    return event_record(
        order=chargeback.order,
        kind="chargeback.opened",
        actor=None,
        to_state=chargeback.status,
        notify=("staff",),
        at=at,
        refunds_paid=refunds_paid,
        payouts_held=held,
        **_chargeback_fields(chargeback),
    )


def event_chargeback_closed(
    *, chargeback: Chargeback, released: int, cancelled: int, at: datetime
) -> Event:
    return event_record(
        order=chargeback.order,
        kind="chargeback.closed",
        actor=None,
        from_state=ChargebackStatus.OPEN,
        to_state=chargeback.status,
        note=chargeback.stripe_status,
        notify=("buyer", "seller", "staff"),
        at=at,
        outcome=chargeback.status,
        stripe_status=chargeback.stripe_status,
        payouts_released=released,
        payouts_cancelled=cancelled,
        **_chargeback_fields(chargeback),
    )


def event_chargeback_refund_paid(*, payout: Payout, chargeback: Chargeback, at: datetime) -> Event:
    """A payout already on its way to the gateway when the chargeback opened was paid: staff
    submit its refund id to the bank as evidence."""
    return event_record(
        order=payout.order,
        kind="chargeback.refund_paid",
        actor=None,
        to_state=chargeback.status,
        notify=("staff",),
        at=at,
        refunds_paid=[payout.gateway_reference],
        payout_id=payout.public_id,
        payout_amount=str(payout.amount),
        **_chargeback_fields(chargeback),
    )


def event_payout_cancelled_for_chargeback(*, payout: Payout, from_state: str) -> Event:
    return event_record(
        order=payout.order,
        kind="payout.cancelled",
        actor=None,
        from_state=from_state,
        to_state=payout.status,
        note="chargeback",
        amount=str(payout.amount),
        payout_id=payout.public_id,
        reason="chargeback",
    )
