"""What each kind of notice is about, who gets it, and sample data for the staff preview.

The recipients of a real event come from its payload (`payload["notify"]`, written by the domain
app that recorded it); the roles here only say which variants the preview page and the tests
render. A kind missing here still goes out, with the generic template.
"""

from __future__ import annotations

from typing import Any, Final

# Payload keys that hold a deadline (ISO 8601 instants); every email shows each one in the
# marketplace time zone and in the recipient's own (SPEC §3).
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
)

REASON_LABELS: Final = {
    "changed_mind": "changed my mind",
    "not_received": "item not received",
    "not_as_described": "not as described",
    "damaged": "arrived damaged",
    "wrong_item": "wrong item sent",
    "other": "other",
}
CLOSED_REASON_LABELS: Final = {
    "rejected": "rejected by the seller",
    "offer_declined": "the partial offer was declined or lapsed",
    "expired": "the return was not shipped in time",
    "withdrawn": "withdrawn by the buyer",
    "dispute_lost": "the dispute was decided for the seller",
    "dispute_withdrawn": "the dispute was withdrawn",
}

# kind -> roles that receive it (as the domain apps record it today).
KINDS: Final[dict[str, tuple[str, ...]]] = {
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
    "refund.payout_blocked": ("staff",),
    "reminder.seller_response": ("seller",),
    "reminder.return_shipping": ("buyer",),
    "reminder.dispute_window": ("buyer",),
    "order.cancelled": ("buyer", "seller"),
    "payout.succeeded": ("buyer", "seller"),
    "payout.failed": ("staff",),
    "payout.overdue": ("buyer", "staff"),
    "message.posted": ("buyer", "seller"),
    "dispute.opened": ("buyer", "seller", "staff"),
    "dispute.statement_added": ("buyer",),
    "dispute.info_requested": ("buyer", "seller"),
    "dispute.info_answered": ("staff",),
    "dispute.message_posted": ("buyer", "seller"),
    "dispute.decided": ("buyer", "seller"),
    "dispute.withdrawn": ("buyer", "seller"),
    "dispute.statement_window_lapsed": ("staff",),
    "dispute.sla_target_passed": ("staff",),
    "dispute.sla_due_passed": ("buyer", "staff"),
}

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
            "dispute_by": "2026-11-14T09:30:00+00:00",
        },
        "refund.offer_lapsed": {
            "offer_amount": "30.000",
            "closed_reason": "offer_declined",
            "dispute_by": "2026-11-14T09:30:00+00:00",
        },
        "refund.rejected": {
            "closed_reason": "rejected",
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
            "dispute_by": "2026-11-19T15:59:59.999999+00:00",
        },
        "refund.return_confirmed": {"approved_amount": "59.900", "return_number": "RMA-7K3F9Q2D"},
        "refund.return_auto_confirmed": {
            "approved_amount": "59.900",
            "return_number": "RMA-7K3F9Q2D",
        },
        "refund.withdrawn": {
            "closed_reason": "withdrawn",
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
            "dispute_by": "2026-11-12T12:00:00+00:00",
        },
        "order.cancelled": {"reason": "out_of_stock", "case_id": None},
        "payout.succeeded": {"purpose": "refund"},
        "payout.failed": {"purpose": "refund", "attempts": 2, "reason": "Card issuer unavailable"},
        "payout.overdue": {
            "purpose": "refund",
            "attempts": 4,
            "status": "failed",
            "reason": "Card issuer unavailable",
            "pay_by": "2026-11-11T12:00:00+00:00",
        },
        "message.posted": {"excerpt": "Can you send a photo of the <box>?"},
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
