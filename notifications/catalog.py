"""The notification catalog: who is told of each kind of event, what an email reads from a
payload, and sample data for the staff preview.

The people a real event reaches are named in its payload (`payload["notify"]`: ids of the buyer
and the seller, and whether staff are told), written by the domain app that recorded it; the
catalog is the declaration a test holds the domain apps to. A kind missing here still goes out,
with the generic template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Payload keys that hold a deadline (ISO 8601 instants); every email shows each one in the
# marketplace time zone and in the recipient's own (docs/rules.md, Marketplace time zone).
DEADLINE_KEYS: Final = (
    "respond_by",
    "offer_by",
    "return_by",
    "confirm_by",
    "dispute_by",
    "statement_by",
    "decision_target",
    "decision_due",
    "pay_by",
)
# Payload keys that hold an amount in the event's currency.
AMOUNT_KEYS: Final = (
    "amount",
    "approved_amount",
    "offer_amount",
    "decided_amount",
    "desired_amount",
    "payout_amount",
)


@dataclass(frozen=True)
class Notice:
    """Who is told of one kind of event. No roles: the event is silent, kept for the audit trail
    and the timelines, and no one gets a notice of it."""

    roles: tuple[str, ...] = ()
    # The author's own role is not told of what they did (a message, a file): the domain app
    # names the other party in the payload's `notify`.
    except_author: bool = False

    @property
    def silent(self) -> bool:
        return not self.roles


SILENT: Final = Notice()
_PARTIES: Final = ("buyer", "seller")

# Every kind of event the domain apps write, and who is told of it. A test generated from the
# domain's event functions proves that each kind written is here, that each kind told has its
# three templates, and that the roles agree with what the domain app addresses in `notify`.
CATALOG: Final[dict[str, Notice]] = {
    "order.received": SILENT,
    "order.shipped": SILENT,
    "order.delivered": SILENT,
    "order.cancelled": Notice(_PARTIES),
    "payout.created": SILENT,
    "payout.retried": SILENT,
    "payout.cancelled": SILENT,
    "payout.succeeded": Notice(_PARTIES),
    "payout.failed": Notice(("staff",)),
    "payout.key_refused": Notice(("staff",)),
    "payout.awaiting_staff": Notice(("staff",)),
    "payout.paid_outside": SILENT,  # `payout.succeeded` tells both parties the money moved
    "payout.reversed": Notice(("staff",)),
    "payout.overdue": Notice(("buyer", "staff")),
    "chargeback.opened": Notice(("staff",)),
    "chargeback.closed": Notice(("buyer", "seller", "staff")),
    "chargeback.refund_paid": Notice(("staff",)),
    "message.posted": Notice(_PARTIES, except_author=True),
    "refund.requested": Notice(("seller",)),
    "refund.accepted": Notice(("buyer",)),
    "refund.auto_accepted": Notice(_PARTIES),
    "refund.offer_made": Notice(("buyer",)),
    "refund.offer_accepted": Notice(("seller",)),
    "refund.offer_declined": Notice(_PARTIES),
    "refund.offer_lapsed": Notice(_PARTIES),
    "refund.rejected": Notice(("buyer",)),
    "refund.return_shipped": Notice(("seller",)),
    "refund.return_expired": Notice(_PARTIES),
    "refund.return_confirmed": Notice(("buyer",)),
    "refund.return_auto_confirmed": Notice(_PARTIES),
    "refund.withdrawn": Notice(_PARTIES),
    "refund.refunded": SILENT,  # `payout.succeeded` tells both parties the money moved
    "refund.escalated": SILENT,  # `dispute.opened` tells everyone
    "refund.dispute_resolved": SILENT,  # `dispute.decided` tells both parties
    "refund.payout_blocked": Notice(("staff",)),
    "refund.closed_by_chargeback": SILENT,  # `chargeback.closed` tells everyone
    "reminder.seller_response": Notice(("seller",)),
    "reminder.return_shipping": Notice(("buyer",)),
    "reminder.dispute_window": Notice(("buyer",)),
    # A file the other party adds may change what one answers or states before a deadline, so
    # they are told; staff adding a file tells both parties.
    "evidence.added": Notice(_PARTIES, except_author=True),
    "dispute.opened": Notice(("buyer", "seller", "staff")),
    "dispute.statement_added": Notice(("buyer",)),
    "dispute.review_started": SILENT,
    "dispute.assigned": SILENT,
    "dispute.info_requested": Notice(_PARTIES),
    "dispute.info_answered": Notice(("staff",)),
    "dispute.message_posted": Notice(_PARTIES, except_author=True),
    "dispute.decided": Notice(_PARTIES),
    "dispute.withdrawn": Notice(_PARTIES),
    "dispute.closed_by_chargeback": SILENT,  # `chargeback.closed` tells everyone
    "dispute.statement_window_lapsed": Notice(("staff",)),
    "dispute.sla_target_passed": Notice(("staff",)),
    "dispute.sla_due_passed": Notice(("buyer", "staff")),
}


def told_kinds() -> dict[str, tuple[str, ...]]:
    """The kinds someone is told of, with the roles that may receive each (the preview page)."""
    return {kind: notice.roles for kind, notice in CATALOG.items() if not notice.silent}


_CASE = "6f1c2a9e-8d4b-4c71-9a53-2f0e6b7d1c84"
_DISPUTE = "c3a8e5d2-1b7f-4e96-8a04-5d9f2c6b3e17"


def sample_payload(kind: str) -> dict[str, Any]:
    """A realistic payload for `kind` (the preview page renders every template with it)."""
    base: dict[str, Any] = {
        "order_number": "ORD-204817",
        "currency": "USD",
        "shop": "Sam's <Travel> Shop",
        "payment_method_label": "Visa ••4242",
        "case_id": _CASE,
        "reason": "not_as_described",
        "reason_label": "Not as described",
        "amount": "59.900",
    }
    respond_by = {"respond_by": "2026-11-10T12:00:00+00:00"}
    extra: dict[str, dict[str, Any]] = {
        "refund.requested": respond_by,
        "reminder.seller_response": respond_by,
        "refund.accepted": {
            "approved_amount": "59.900",
            "return_number": "RMA-7K3F9Q2D",
            "return_by": "2026-11-17T15:59:59.999999+00:00",
        },
        "refund.auto_accepted": {
            **respond_by,
            "approved_amount": "59.900",
            "return_number": "RMA-7K3F9Q2D",
            "return_by": "2026-11-17T15:59:59.999999+00:00",
        },
        "refund.offer_made": {"offer_amount": "30.000", "offer_by": "2026-11-12T09:30:00+00:00"},
        "refund.offer_accepted": {"offer_amount": "30.000", "approved_amount": "30.000"},
        "refund.offer_declined": {
            "offer_amount": "30.000",
            "closed_reason": "offer_declined",
            "closed_reason_label": "Offer declined or lapsed",
            "dispute_by": "2026-11-14T09:30:00+00:00",
        },
        "refund.offer_lapsed": {
            "offer_amount": "30.000",
            "closed_reason": "offer_declined",
            "closed_reason_label": "Offer declined or lapsed",
            "dispute_by": "2026-11-14T09:30:00+00:00",
        },
        "refund.rejected": {
            "closed_reason": "rejected",
            "closed_reason_label": "Rejected by the seller",
            "reject_reason": "The item was used <and> scratched.",
            "dispute_by": "2026-11-12T12:00:00+00:00",
        },
        "refund.return_shipped": {
            "return_number": "RMA-7K3F9Q2D",
            "confirm_by": "2026-11-30T15:59:59.999999+00:00",
        },
        "refund.return_expired": {
            "return_number": "RMA-7K3F9Q2D",
            "closed_reason": "expired",
            "closed_reason_label": "Return not shipped in time",
            "dispute_by": "2026-11-19T15:59:59.999999+00:00",
        },
        "refund.return_confirmed": {"approved_amount": "59.900", "return_number": "RMA-7K3F9Q2D"},
        "refund.return_auto_confirmed": {
            "approved_amount": "59.900",
            "return_number": "RMA-7K3F9Q2D",
        },
        "refund.withdrawn": {
            "closed_reason": "withdrawn",
            "closed_reason_label": "Withdrawn by the buyer",
            "dispute_by": "2026-11-12T12:00:00+00:00",
        },
        "refund.payout_blocked": {"approved_amount": "59.900"},
        "reminder.return_shipping": {
            "return_number": "RMA-7K3F9Q2D",
            "approved_amount": "59.900",
            "return_by": "2026-11-17T15:59:59.999999+00:00",
        },
        "reminder.dispute_window": {
            "closed_reason": "rejected",
            "closed_reason_label": "Rejected by the seller",
            "dispute_by": "2026-11-12T12:00:00+00:00",
        },
        "order.cancelled": {"reason": "out_of_stock", "reason_label": None, "case_id": None},
        "payout.succeeded": {"purpose": "refund"},
        "payout.failed": {"purpose": "refund", "attempts": 2, "reason": "Card issuer unavailable"},
        "payout.key_refused": {
            "reason": "Stripe refused the API key (HTTP 401): set STRIPE_SECRET_KEY to a valid "
            "secret key; the payout waits"
        },
        "payout.awaiting_staff": {
            "purpose": "refund",
            "payment_method_label": "PayPal",
            "reason": "The payment gateway cannot refund a PayPal payment: pay it outside the "
            "portal, then mark it paid there.",
        },
        "payout.reversed": {
            "purpose": "refund",
            "reference": "re_3PqA7x2eZvKYlo2C0q1w2e3r",
            "reason": "Stripe refund re_3PqA7x2eZvKYlo2C0q1w2e3r failed: the card has expired "
            "or was cancelled",
        },
        "payout.overdue": {
            "purpose": "refund",
            "attempts": 4,
            "status": "failed",
            "reason": "Card issuer unavailable",
            "pay_by": "2026-11-11T12:00:00+00:00",
        },
        "chargeback.opened": {
            "stripe_dispute_id": "dp_1Q2w3E4r5T6y",
            "chargeback_reason": "fraudulent",
            "status": "open",
            "refunds_paid": ["re_3Ab9Xy"],
            "payouts_held": 1,
        },
        "chargeback.closed": {
            "stripe_dispute_id": "dp_1Q2w3E4r5T6y",
            "chargeback_reason": "fraudulent",
            "status": "lost",
            "outcome": "lost",
            "stripe_status": "lost",
            "payouts_released": 0,
            "payouts_cancelled": 1,
        },
        "chargeback.refund_paid": {
            "stripe_dispute_id": "dp_1Q2w3E4r5T6y",
            "status": "open",
            "refunds_paid": ["re_3Ab9Xy"],
            "payout_amount": "59.900",
        },
        "message.posted": {"excerpt": "Can you send a photo of the <box>?"},
        "evidence.added": {
            "author_role": "buyer",
            "file_name": "cracked <mug>.png",
            "evidence_kind": "photo",
            "for_dispute": False,
        },
    }
    dispute = {
        "dispute_id": _DISPUTE,
        "desired_amount": "59.900",
        "statement_by": "2026-11-14T08:00:00+00:00",
        "decision_target": "2026-11-17T15:59:59.999999+00:00",
        "decision_due": "2026-11-19T15:59:59.999999+00:00",
    }
    dispute_extra: dict[str, dict[str, Any]] = {
        "dispute.statement_added": {"excerpt": "The buyer used the mug for a week."},
        "dispute.info_requested": {
            "info_party": "buyer",
            "asked_party": "buyer",
            "info_question": "Please send a photo of the damage.",
        },
        "dispute.info_answered": {"answered_party": "buyer", "excerpt": "Photo attached."},
        "dispute.message_posted": {"author_role": "seller", "excerpt": "We can offer 30 USD."},
        "dispute.decided": {
            "outcome": "buyer",
            "decided_amount": "59.900",
            "rationale": "The photos show the damage the buyer described.",
        },
    }
    payload = {**base}
    if kind.startswith("dispute."):
        payload.update(dispute)
        payload.update(dispute_extra.get(kind, {}))
    payload.update(extra.get(kind, {}))
    return {k: v for k, v in payload.items() if v is not None}
