"""The timeline of a refund case as a person reads it: what happened, when, by whom.

One presenter for the case page and the dispute page (both show the case's whole audit trail,
the dispute's events included: they carry the case's id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kernel.money import format_money

from .models import RefundCase
from .selectors import refund_timeline

EVENT_WORDS = {
    "refund.requested": "Refund requested",
    "refund.accepted": "The seller accepted the request",
    "refund.auto_accepted": "Accepted automatically: the seller did not answer in time",
    "refund.offer_made": "The seller offered a partial refund",
    "refund.offer_accepted": "The buyer accepted the offer",
    "refund.offer_declined": "The buyer declined the offer",
    "refund.offer_lapsed": "The offer lapsed: no answer in time",
    "refund.rejected": "The seller rejected the request",
    "refund.return_shipped": "The return was shipped",
    "refund.return_expired": "Closed: the return was not shipped in time",
    "refund.return_confirmed": "The seller confirmed the return arrived",
    "refund.return_auto_confirmed": "Return counted as received: the seller did not confirm "
    "in time",
    "refund.withdrawn": "The buyer withdrew the request",
    "refund.refunded": "Refund paid",
    "refund.payout_blocked": "Payment held for a staff check",
    "payout.created": "Refund approved; payment started",
    "payout.succeeded": "The money went back",
    "payout.failed": "A payment attempt failed; it is retried automatically",
    "payout.retried": "Payment retried",
    "payout.awaiting_staff": "Payment to be sent by staff (this payment method is refunded by "
    "hand)",
    "payout.overdue": "The payment is late; staff are on it",
    "payout.reversed": "The card issuer returned the refund; staff will pay it another way",
    "payout.cancelled": "Payment cancelled",
    "refund.closed_by_chargeback": "Closed: the bank decided the chargeback",
    "dispute.closed_by_chargeback": "Closed: the bank decided the chargeback",
    "evidence.added": "File added",
    "reminder.seller_response": "Reminder sent to the seller",
    "reminder.return_shipping": "Reminder sent to the buyer",
    "reminder.dispute_window": "Reminder sent to the buyer",
    "dispute.opened": "Dispute opened",
    "dispute.statement_added": "The seller added a statement",
    "dispute.review_started": "Staff started the review",
    "dispute.info_requested": "Staff asked for more information",
    "dispute.info_answered": "Information sent to staff",
    "dispute.evidence_added": "File added to the dispute",
    "dispute.decided": "Staff decided the dispute",
    "dispute.withdrawn": "The buyer withdrew the dispute",
    "dispute.statement_window_lapsed": "The seller's time for a statement ended",
}
# Kinds the timeline leaves out: messages have their own thread; staff-desk bookkeeping; and the
# case's side of a dispute opening or ending, which the dispute's own event says in more detail.
TIMELINE_SKIP = frozenset(
    {
        "message.posted",
        "dispute.message_posted",
        "dispute.assigned",
        "dispute.sla_target_passed",
        "dispute.sla_due_passed",
        "refund.escalated",
        "refund.dispute_resolved",
    }
)


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    what: str
    who: str
    note: str = ""
    detail: str = ""


def refund_timeline_entries(*, case: RefundCase) -> list[TimelineEntry]:
    """The case's audit trail, oldest first, as the lines `refunds/partials/timeline.html` shows."""
    entries = []
    for event in refund_timeline(case=case):
        if event.kind in TIMELINE_SKIP:
            continue
        what = EVENT_WORDS.get(event.kind, event.kind.replace(".", ": ").replace("_", " "))
        detail = ""
        payload = event.payload or {}
        if event.kind == "refund.offer_made" and payload.get("offer_amount"):
            what = f"The seller offered {_money(payload['offer_amount'], case.currency)}"
        elif event.kind in ("evidence.added", "dispute.evidence_added"):
            detail = payload.get("file_name", "")
        elif event.kind == "payout.succeeded" and payload.get("amount"):
            what = (
                f"{_money(payload['amount'], case.currency)} went back to "
                f"{payload.get('payment_method_label', 'the original payment method')}"
            )
        elif event.kind == "refund.return_shipped":
            detail = " ".join(
                filter(None, [payload.get("carrier"), payload.get("tracking_number")])
            )
        entries.append(
            TimelineEntry(
                when=event.created_at,
                what=what,
                who=event.actor.display_name if event.actor else "RefundPortal",
                note=event.note,
                detail=detail,
            )
        )
    return entries


def _money(amount: object, currency: str) -> str:
    return format_money(Decimal(str(amount)), currency)
