"""Refund case services: one row-locked service per user action (docs/architecture.md, Services and
selectors).

Each service locks the order, then the case (always in that order), checks who may act and
whether the running deadline still allows it, applies the django-fsm transition, saves, writes
the audit event, and on entering `refund_pending` reserves and queues the payout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from kernel import windows
from kernel.errors import (
    AmountExceedsRefundable,
    Duplicate,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
    WindowClosed,
    WindowNotOpen,
)
from kernel.money import format_money, parse_amount_field
from orders.models import Message, Order, OrderStatus, User
from orders.services import message_post_on_order, order_lock
from payouts.models import Chargeback, Payout
from payouts.rules import order_chargeback_refusal
from payouts.services import payout_create

from . import rules
from .events import event_case
from .models import (
    OPEN_STATES,
    Reason,
    RefundCase,
    RefundItem,
    State,
    new_return_number,
)


@dataclass(frozen=True)
class ItemRequest:
    order_item_id: int
    quantity: int


def _fmt(instant: datetime, user: User | None) -> str:
    return windows.format_both(instant, user.time_zone if user else None)


def refund_window(*, order: Order, reason: str) -> windows.Window | None:
    return windows.filing_window(
        reason=reason,
        placed_at=order.placed_at,
        deliver_by=order.deliver_by,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        return_policy=order.return_policy,
    )


def refund_check_window(*, order: Order, reason: str, now: datetime, viewer: User | None) -> None:
    """Raise window_not_open / window_closed naming the date, as the form's step 2 explains."""
    window = refund_window(order=order, reason=reason)
    if window is None:
        raise WindowNotOpen(
            f"A '{Reason(reason).label}' request can be filed once the order is delivered.",
            fields={"reason": ["Opens on delivery."]},
        )
    state = window.state(now)
    if state == "not_open":
        raise WindowNotOpen(
            f"A '{Reason(reason).label}' request can be filed from "
            f"{_fmt(window.opens_at, viewer)}.",
            fields={"reason": [f"Opens {_fmt(window.opens_at, viewer)}."]},
        )
    if state == "closed":
        raise WindowClosed(
            f"The window for '{Reason(reason).label}' closed on {_fmt(window.closes_at, viewer)}.",
            fields={"reason": [f"Closed {_fmt(window.closes_at, viewer)}."]},
        )


def refund_request_validate(
    *,
    order: Order,
    buyer: User,
    reason: str,
    amount: Any = None,
    items: list[ItemRequest] | None = None,
    now: datetime,
) -> tuple[Decimal, list[RefundItem]]:
    """Every rule a refund request must meet, without a write or a lock: step 3 of the request
    pages asks it as it stands, `refund_request` asks it again under the order's row lock.
    Returns the amount and the item lines (unsaved) the request would file."""
    if order.buyer_id != buyer.pk:
        raise NotAllowed("Only the buyer of this order can ask for a refund.")
    if reason not in Reason.values:
        raise ValidationFailed("Choose a reason.", fields={"reason": ["Unknown reason."]})
    if order.status == OrderStatus.CANCELLED:
        raise InvalidTransition("This order was cancelled and refunded already.")
    if RefundCase.objects.filter(order=order, state__in=OPEN_STATES).exists():
        raise Duplicate("This order already has an open refund case.")
    if (held := order_chargeback_refusal(order=order)) is not None:
        raise held
    refund_check_window(order=order, reason=reason, now=now, viewer=buyer)

    lines = {i.pk: i for i in order.items.all()}
    item_rows: list[RefundItem] = []
    items_value = Decimal(0)
    for req in items or []:
        line = lines.get(req.order_item_id)
        if line is None or req.quantity < 1 or req.quantity > line.quantity:
            raise ValidationFailed(
                "Choose items and quantities from this order.",
                fields={"items": ["Unknown item or quantity out of range."]},
            )
        items_value += line.unit_price * req.quantity
        item_rows.append(RefundItem(order_item=line, quantity=req.quantity))
    if amount in (None, "") and item_rows:
        amount = items_value
    if amount in (None, ""):
        raise ValidationFailed(
            "Enter the amount you want back.", fields={"amount": ["This field is required."]}
        )
    value = parse_amount_field(amount, order.currency)
    if value > order.refundable:
        left = format_money(order.refundable, order.currency)
        raise AmountExceedsRefundable(
            f"At most {left} can be refunded on this order.",
            fields={"amount": [f"At most {left}."]},
        )
    return value, item_rows


@transaction.atomic
def refund_request(
    *,
    order: Order,
    buyer: User,
    reason: str,
    amount: Any = None,
    description: str = "",
    return_item: bool = False,
    items: list[ItemRequest] | None = None,
    now: datetime | None = None,
) -> RefundCase:
    now = now or timezone.now()
    order = order_lock(order)
    value, item_rows = refund_request_validate(
        order=order, buyer=buyer, reason=reason, amount=amount, items=items, now=now
    )
    case = RefundCase(
        order=order,
        reason=reason,
        description=(description or "").strip(),
        amount=value,
        currency=order.currency,
        return_item=bool(return_item),
        created_at=now,
        respond_by=windows.respond_by(filed_at=now),
        return_number=new_return_number() if return_item else None,
    )
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError as exc:
        # The partial unique index on open cases: a concurrent request won (or, once in
        # 32^8, the reserved return number collided; the buyer simply files again).
        raise Duplicate("This order already has an open refund case.") from exc
    for row in item_rows:
        row.case = case
    RefundItem.objects.bulk_create(item_rows)
    case.order = order
    event_case(case=case, kind="refund.requested", actor=buyer, from_state="", at=now)
    return case


# --- the per-case transition runner ----------------------------------------------------------


def _lock_case(case: RefundCase | str | UUID) -> RefundCase:
    public_id = case.public_id if isinstance(case, RefundCase) else case
    order_id = RefundCase.objects.filter(public_id=public_id).values_list("order_id", flat=True)
    order = order_lock(order_id.get())
    locked = RefundCase.objects.select_for_update().get(public_id=public_id)
    locked.order = order
    return locked


def _require_party(case: RefundCase, actor: User, party: str) -> None:
    if (refusal := rules.refund_party_refusal(case=case, user=actor, party=party)) is not None:
        raise refusal


def _transition(
    case: RefundCase,
    *,
    actor: User,
    method: str,
    kind: str,
    now: datetime,
    note: str = "",
    **kwargs: Any,
) -> RefundCase:
    case = _lock_case(case)
    action = rules.ACTION_OF_METHOD[method]
    refusal = rules.refund_action_refusal(case=case, user=actor, action=action, now=now)
    if refusal is not None:
        raise refusal
    from_state = case.state
    getattr(case, method)(at=now, **kwargs)
    case.save()
    event_case(case=case, kind=kind, actor=actor, from_state=from_state, note=note, at=now)
    if case.state == State.REFUND_PENDING:
        _start_payout(case, actor=actor)
    return case


def _start_payout(case: RefundCase, *, actor: User | None) -> Payout:
    """Reserve and queue the refund to the original payment method (holding the order lock)."""
    assert case.approved_amount is not None
    payout = payout_create(
        order=case.order,
        amount=case.approved_amount,
        purpose="refund",
        subject_id=case.public_id,
        idempotency_key=f"refund:{case.public_id}",
        actor=actor,
    )
    RefundCase.objects.filter(pk=case.pk).update(payout=payout)
    case.payout = payout
    return payout


def refund_start_payouts(*, case_ids: list[int], now: datetime | None = None) -> int:
    """Follow-up of the sweeps: payouts for cases they moved to `refund_pending` (idempotent)."""
    started = 0
    for case_id in case_ids:
        with transaction.atomic():
            public_id = RefundCase.objects.filter(pk=case_id).values_list("public_id", flat=True)
            case = _lock_case(public_id.get())
            if case.state != State.REFUND_PENDING or case.payout_id is not None:
                continue
            try:
                with transaction.atomic():
                    _start_payout(case, actor=None)
                started += 1
            except AmountExceedsRefundable as exc:
                # Held for staff: the periodic re-dispatch leaves it alone (an indexed flag, not
                # a scan of the event table every minute).
                RefundCase.objects.filter(pk=case.pk).update(
                    payout_blocked_at=now or timezone.now()
                )
                event_case(
                    case=case,
                    kind="refund.payout_blocked",
                    actor=None,
                    from_state=case.state,
                    note=exc.message,
                    at=now,
                )
    return started


def refund_cases_awaiting_payout(*, limit: int = 1000) -> list[int]:
    return list(
        RefundCase.objects.filter(
            state=State.REFUND_PENDING, payout__isnull=True, payout_blocked_at__isnull=True
        )
        .order_by("approved_at")
        .values_list("id", flat=True)[:limit]
    )


# --- seller actions ---------------------------------------------------------------------------


@transaction.atomic
def refund_accept(*, case: RefundCase, actor: User, now: datetime | None = None) -> RefundCase:
    return _transition(
        case,
        actor=actor,
        method="accept",
        kind="refund.accepted",
        now=now or timezone.now(),
    )


@transaction.atomic
def refund_offer(
    *, case: RefundCase, actor: User, amount: Any, now: datetime | None = None
) -> RefundCase:
    _require_party(case, actor, "seller")
    value = parse_amount_field(amount, case.currency)
    if value >= case.amount:
        raise ValidationFailed(
            "A partial offer must be less than the amount asked for; accept the request instead.",
            fields={"amount": [f"Less than {format_money(case.amount, case.currency)}."]},
        )
    refundable = Order.objects.get(pk=case.order_id).refundable
    if value > refundable:
        raise AmountExceedsRefundable(
            f"At most {format_money(refundable, case.currency)} can be refunded."
        )
    return _transition(
        case,
        actor=actor,
        method="offer",
        kind="refund.offer_made",
        now=now or timezone.now(),
        amount=value,
    )


@transaction.atomic
def refund_reject(
    *, case: RefundCase, actor: User, reason: str, now: datetime | None = None
) -> RefundCase:
    _require_party(case, actor, "seller")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "Tell the buyer why the request is rejected.",
            fields={"reason": ["This field is required."]},
        )
    return _transition(
        case,
        actor=actor,
        method="reject",
        kind="refund.rejected",
        now=now or timezone.now(),
        note=reason,
        reason=reason[:2000],
    )


@transaction.atomic
def refund_confirm_return(
    *, case: RefundCase, actor: User, now: datetime | None = None
) -> RefundCase:
    return _transition(
        case,
        actor=actor,
        method="confirm_return",
        kind="refund.return_confirmed",
        now=now or timezone.now(),
    )


# --- buyer actions ----------------------------------------------------------------------------


@transaction.atomic
def refund_accept_offer(
    *, case: RefundCase, actor: User, now: datetime | None = None
) -> RefundCase:
    return _transition(
        case,
        actor=actor,
        method="accept_offer",
        kind="refund.offer_accepted",
        now=now or timezone.now(),
    )


@transaction.atomic
def refund_decline_offer(
    *, case: RefundCase, actor: User, now: datetime | None = None
) -> RefundCase:
    return _transition(
        case,
        actor=actor,
        method="decline_offer",
        kind="refund.offer_declined",
        now=now or timezone.now(),
    )


@transaction.atomic
def refund_withdraw(*, case: RefundCase, actor: User, now: datetime | None = None) -> RefundCase:
    return _transition(
        case,
        actor=actor,
        method="withdraw",
        kind="refund.withdrawn",
        now=now or timezone.now(),
    )


@transaction.atomic
def refund_ship_return(
    *,
    case: RefundCase,
    actor: User,
    carrier: str,
    tracking_number: str,
    now: datetime | None = None,
) -> RefundCase:
    _require_party(case, actor, "buyer")
    carrier, tracking_number = (carrier or "").strip(), (tracking_number or "").strip()
    fields = {}
    if not carrier:
        fields["carrier"] = ["This field is required."]
    if not tracking_number:
        fields["tracking_number"] = ["This field is required."]
    if len(carrier) > 80 or len(tracking_number) > 80:
        fields["tracking_number"] = ["At most 80 characters."]
    if fields:
        raise ValidationFailed("Enter the carrier and the tracking number.", fields=fields)
    return _transition(
        case,
        actor=actor,
        method="ship_return",
        kind="refund.return_shipped",
        now=now or timezone.now(),
        carrier=carrier,
        tracking_number=tracking_number,
    )


# --- messages ---------------------------------------------------------------------------------


def refund_message_post(*, case: RefundCase, author: User, body: str) -> Message:
    """The case thread is the order's thread (docs/rules.md, Messages and the invoice): it carries
    on, and feeds any dispute."""
    if case.state == State.ESCALATED:
        raise InvalidTransition("A dispute is open: write on the dispute instead.")
    return message_post_on_order(order=case.order, author=author, body=body, case_id=case.public_id)


# --- the payout hook and the dispute-facing services -------------------------------------------


def refund_mark_paid(payout: Payout, now: datetime) -> None:
    """Registered in orders.hooks: runs in the payout's settling transaction."""
    assert payout.subject_id is not None, "a refund payout names its case"
    case = (
        RefundCase.objects.select_for_update()
        .select_related("order__shop")
        .get(public_id=payout.subject_id)
    )
    if case.state != State.REFUND_PENDING:
        return
    from_state = case.state
    case.mark_refunded(amount=payout.amount, at=now)
    case.save()
    event_case(
        case=case,
        kind="refund.refunded",
        actor=None,
        from_state=from_state,
        at=now,
        payout_id=str(payout.public_id),
    )


def refund_escalate(*, case: RefundCase, actor: User, now: datetime) -> RefundCase:
    """A dispute opened on a closed case (the caller, disputes, holds the locks)."""
    if (refusal := rules.refund_dispute_refusal(case=case, user=actor, now=now)) is not None:
        raise refusal
    from_state = case.state
    case.escalate()
    case.save()
    event_case(case=case, kind="refund.escalated", actor=actor, from_state=from_state, at=now)
    return case


def refund_resolve(
    *,
    case: RefundCase,
    for_buyer: bool,
    amount: Decimal | None,
    actor: User,
    now: datetime,
    withdrawn: bool = False,
) -> RefundCase:
    """End of a dispute (the caller holds the order and case locks)."""
    from_state = case.state
    if withdrawn:
        case.dispute_withdrawn(at=now)
    elif for_buyer:
        assert amount is not None
        case.resolve_for_buyer(amount=amount, at=now)
    else:
        case.resolve_for_seller(at=now)
    case.save()
    # The dispute's own event tells the parties; this one keeps the case's timeline whole.
    event_case(
        case=case, kind="refund.dispute_resolved", actor=actor, from_state=from_state, at=now
    )
    if case.state == State.REFUND_PENDING:
        _start_payout(case, actor=actor)
    return case


def refund_close_for_chargeback(chargeback: Chargeback, now: datetime) -> None:
    """Registered in `payouts.hooks.chargeback_lost` (the caller holds the order's lock): the
    bank refunded the buyer, so the order's open case ends with the reason `chargeback`."""
    cases = (
        RefundCase.objects.select_for_update()
        .filter(order_id=chargeback.order_id, state__in=OPEN_STATES)
        .order_by("id")
    )
    for case in cases:
        case.order = chargeback.order
        from_state = case.state
        case.close_for_chargeback(at=now)
        case.save()
        event_case(
            case=case,
            kind="refund.closed_by_chargeback",
            actor=None,
            from_state=from_state,
            at=now,
            stripe_dispute_id=chargeback.stripe_dispute_id,
        )


def case_lock(case: RefundCase | str | UUID) -> RefundCase:
    return _lock_case(case)
