"""Chargebacks: a buyer who disputes the card payment with their bank while the portal refunds
them would be paid twice (docs/rules.md, Chargebacks).

Stripe's `charge.dispute.created` and `charge.dispute.closed` events arrive here as the Dispute
object (a plain mapping) and the event's instant. Both entry points are idempotent and
order-safe: the Stripe dispute id is unique, and each runs under the order's lock
(docs/architecture.md, Lock order), so a redelivery or a `closed` before its `created` finds the
row the other wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from orders.models import Order
from orders.services import order_lock

from . import events, hooks
from .gateway import stripe_decimal
from .models import Chargeback, Payout, PayoutStatus
from .services import payout_enqueue

# Stripe's closing statuses: only "lost" means the bank took the money back. "won",
# "warning_closed" (an inquiry that never became a chargeback) and "charge_refunded" leave the
# money with the marketplace, so the hold is released.
STRIPE_LOST = "lost"
UNSETTLED = (PayoutStatus.PENDING, PayoutStatus.FAILED, PayoutStatus.AWAITING_STAFF)


def _order_of(dispute: Mapping[str, Any]) -> Order | None:
    """The order paid by the disputed payment: its reference is the PaymentIntent or the Charge
    (docs/rules.md, Stripe)."""
    references = [r for r in (dispute.get("payment_intent"), dispute.get("charge")) if r]
    if not references:
        return None
    return Order.objects.filter(payment_reference__in=references).order_by("id").first()


def _opened_at(dispute: Mapping[str, Any], at: datetime) -> datetime:
    created = dispute.get("created")
    return datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else at


def _create(order: Order, dispute: Mapping[str, Any], at: datetime) -> Chargeback:
    currency = str(dispute.get("currency") or order.currency).upper()
    return Chargeback.objects.create(
        stripe_dispute_id=dispute["id"],
        order=order,
        amount=stripe_decimal(int(dispute["amount"]), currency),
        currency=currency,
        reason=str(dispute.get("reason") or "")[:60],
        opened_at=_opened_at(dispute, at),
    )


def _hold(order: Order, at: datetime) -> int:
    """Hold every payout of the order that has not reached Stripe yet, and every one staff would
    pay by hand (failed, or waiting for staff: marking it paid is refused meanwhile). A payout
    Stripe already made a refund for (pending, with its id) is read back, never asked for again,
    so holding it would stop nothing."""
    return Payout.objects.filter(
        Q(status=PayoutStatus.PENDING, gateway_reference="")
        | Q(status__in=(PayoutStatus.FAILED, PayoutStatus.AWAITING_STAFF)),
        order=order,
        held_at__isnull=True,
    ).update(held_at=at)


def chargeback_opened(*, dispute: Mapping[str, Any], at: datetime) -> Chargeback | None:
    """`charge.dispute.created`: hold the order's payouts, alert staff (with the refund ids of
    refunds already paid, their evidence for the bank). None for a payment that is no order of
    ours."""
    order = _order_of(dispute)
    if order is None:
        return None
    with transaction.atomic():
        order = order_lock(order.pk)
        existing = Chargeback.objects.filter(stripe_dispute_id=dispute["id"]).first()
        if existing is not None:
            return existing  # a redelivery, or the `closed` came first and settled it
        chargeback = _create(order, dispute, at)
        chargeback.order = order
        # Hold first, then read what was paid: a payout settling concurrently either committed
        # before the hold (then this read sees its refund id) or finds itself held when it locks
        # its row and tells staff itself (`chargeback_refund_settled`).
        held = _hold(order, at)
        refunds_paid = list(
            Payout.objects.filter(order=order)
            .filter(
                Q(status=PayoutStatus.SUCCEEDED)
                | Q(status=PayoutStatus.PENDING, held_at__isnull=True)
            )
            .exclude(gateway_reference="")
            .order_by("id")
            .values_list("gateway_reference", flat=True)
        )
        events.event_chargeback_opened(
            chargeback=chargeback, refunds_paid=refunds_paid, held=held, at=at
        )
        return chargeback


def chargeback_closed(*, dispute: Mapping[str, Any], at: datetime) -> Chargeback | None:
    """`charge.dispute.closed`: lost, the amount counts as refunded, held payouts are cancelled
    and the order's open cases and disputes close (`hooks.chargeback_lost`); otherwise the hold
    is released and held payouts go out. A `closed` with no `created` before it records the
    chargeback and settles it at once."""
    order = _order_of(dispute)
    if order is None:
        return None
    with transaction.atomic():
        order = order_lock(order.pk)
        chargeback = (
            Chargeback.objects.select_for_update().filter(stripe_dispute_id=dispute["id"]).first()
        )
        if chargeback is None:
            # The `created` is late or lost: hold as it would have, then settle.
            chargeback = _create(order, dispute, at)
            _hold(order, at)
        chargeback.order = order
        if not chargeback.is_open:
            return chargeback  # a redelivery
        stripe_status = str(dispute.get("status") or "")
        if stripe_status == STRIPE_LOST:
            chargeback.lose(stripe_status=stripe_status, at=at)
            chargeback.save()
            released, cancelled = 0, _lose(order, chargeback, at)
        else:
            chargeback.win(stripe_status=stripe_status, at=at)
            chargeback.save()
            released, cancelled = _release(order), 0
        events.event_chargeback_closed(
            chargeback=chargeback, released=released, cancelled=cancelled, at=at
        )
        return chargeback


def _lose(order: Order, chargeback: Chargeback, at: datetime) -> int:
    """The bank took the money back: it counts as refunded, and nothing held may be paid now."""
    cancelled, released = 0, Decimal("0")
    # A payout a worker holds right now is mid-call to the gateway and cannot be stopped; it
    # settles as paid or not, and staff hear of a paid one (docs/rules.md, Chargebacks).
    in_flight = Q(status=PayoutStatus.PENDING, claimed_until__gt=timezone.now())
    held = (
        Payout.objects.select_for_update()
        .filter(order=order, held_at__isnull=False, status__in=UNSETTLED)
        .exclude(in_flight)
        .order_by("id")
    )
    for payout in held:
        from_state = payout.status
        payout.cancel_for_chargeback()
        payout.save()
        payout.order = order
        events.event_payout_cancelled_for_chargeback(payout=payout, from_state=from_state)
        cancelled += 1
        released += payout.amount
    # Their reservations go back, as when staff cancel a payout (docs/rules.md, Refund cap).
    Order.objects.filter(pk=order.pk).update(reserved=F("reserved") - released)
    order.refresh_from_db(fields=["reserved", "charged_back"])
    # The disputed amount counts as refunded, up to the total (the constraint's bound): a refund
    # already paid beside it is money paid twice, which staff pursue with the refund id.
    charged_back = min(order.charged_back + chargeback.amount, order.total)
    Order.objects.filter(pk=order.pk).update(charged_back=charged_back)
    order.charged_back = charged_back
    for close in hooks.chargeback_lost:
        close(chargeback, at)
    return cancelled


def _release(order: Order) -> int:
    """The marketplace kept the money: held payouts go out after commit."""
    ids = list(
        Payout.objects.filter(
            order=order, held_at__isnull=False, status=PayoutStatus.PENDING
        ).values_list("id", flat=True)
    )
    # A held failed payout waits for its backoff again, as if never held.
    released = Payout.objects.filter(
        order=order, held_at__isnull=False, status__in=UNSETTLED
    ).update(held_at=None)
    for payout_id in ids:
        transaction.on_commit(partial(payout_enqueue, payout_id=payout_id))
    return released
