"""Payout services: every write of a payout, and the order cancellations that pay one out.

The gateway is called outside any transaction, with the payout's own idempotency key, so a retry
after a crash or a timeout can never refund twice (docs/architecture.md, Payouts).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import can_proceed

from kernel.errors import (
    AmountExceedsRefundable,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
)
from kernel.money import format_money
from orders import rules
from orders.models import Order, User
from orders.services import order_lock

from . import events, hooks
from .gateway import (
    GatewayDeclined,
    GatewayError,
    GatewayTimeout,
    GatewayUnauthorized,
    get_gateway,
)
from .models import Chargeback, ChargebackStatus, Payout, PayoutStatus

log = logging.getLogger(__name__)


PAYOUT_CLAIM = timedelta(minutes=5)
# A payout whose gateway refused our key waits this long before the re-dispatch asks again
# (staff were alerted; the key is theirs to fix).
PAYOUT_KEY_WAIT = timedelta(hours=1)
PAYOUT_BACKOFF = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
]


def _cancel(order: Order, *, actor: User, reason: str, now: datetime) -> Payout:
    amount = order.refundable
    order.cancel(reason=reason, at=now)
    order.save()
    payout = payout_create(
        order=order,
        amount=amount,
        purpose="cancel",
        subject_id=None,
        idempotency_key=f"cancel:{order.number}",
        actor=actor,
    )
    events.event_order_cancelled(order=order, actor=actor, payout=payout)
    return payout


@transaction.atomic
def order_cancel_by_buyer(*, order: Order, actor: User, now: datetime | None = None) -> Payout:
    """Instant cancellation: unshipped, within 24 h of placing, full refund at once (docs/rules.md,
    Instant cancellation)."""
    now = now or timezone.now()
    order = order_lock(order)
    holds = rules.order_cancel_holds(orders=[order])
    refusal = rules.order_cancel_refusal(order=order, user=actor, now=now, holds=holds)
    if refusal is not None:
        raise refusal
    return _cancel(order, actor=actor, reason="buyer_cancelled", now=now)


@transaction.atomic
def order_cancel_out_of_stock(*, order: Order, actor: User, now: datetime | None = None) -> Payout:
    now = now or timezone.now()
    order = order_lock(order)
    holds = rules.order_cancel_holds(orders=[order])
    refusal = rules.order_cancel_out_of_stock_refusal(order=order, user=actor, holds=holds)
    if refusal is not None:
        raise refusal
    return _cancel(order, actor=actor, reason="out_of_stock", now=now)


def payout_create(
    *,
    order: Order,
    amount: Decimal,
    purpose: str,
    subject_id: UUID | None,
    idempotency_key: str,
    actor: User | None,
) -> Payout:
    """Reserve the amount on the order and create the payout; the caller holds the order lock.

    The reservation is an F() increment checked by `order_reserved_within_total`, so even a
    caller that forgot the lock cannot pay more than the order's total.
    """
    assert transaction.get_connection().in_atomic_block, "payout_create needs a transaction"
    existing = Payout.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    if amount <= 0:
        raise ValidationFailed("Nothing is left to refund on this order.")
    if amount > order.refundable:
        left = format_money(order.refundable, order.currency)
        raise AmountExceedsRefundable(f"At most {left} can still be refunded on this order.")
    try:
        with transaction.atomic():
            updated = Order.objects.filter(pk=order.pk).update(reserved=F("reserved") + amount)
            assert updated == 1
            payout = Payout.objects.create(
                # Created while the order's payment is in a chargeback: held like the others
                # (the caller holds the order lock, as the chargeback's services do).
                held_at=timezone.now() if _chargeback_open(order) else None,
                order=order,
                amount=amount,
                currency=order.currency,
                payment_method=order.payment_method,
                payment_reference=order.payment_reference,
                idempotency_key=idempotency_key,
                purpose=purpose,
                subject_id=subject_id,
            )
    except IntegrityError as exc:
        # Either the cap constraint or the key's uniqueness: a concurrent creator got there.
        existing = Payout.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        raise AmountExceedsRefundable(
            "This refund would exceed what the order can still refund."
        ) from exc
    order.refresh_from_db(fields=["reserved"])
    events.event_payout_created(payout=payout, actor=actor)
    transaction.on_commit(lambda: payout_enqueue(payout_id=payout.pk))
    return payout


def _chargeback_open(order: Order) -> bool:
    return Chargeback.objects.filter(order_id=order.pk, status=ChargebackStatus.OPEN).exists()


def payout_enqueue(*, payout_id: int) -> None:
    """Queue the gateway call; if the broker is down the periodic re-dispatch will find it."""
    from .tasks import payout_send

    try:
        payout_send.delay(payout_id)
    except Exception:  # broker unreachable: the payout stays pending and is re-dispatched
        log.warning(
            "could not queue payout %s; the re-dispatch will send it", payout_id, exc_info=True
        )


def _claim_payout(payout_id: int, now: datetime) -> bool:
    """Conditional update: exactly one worker holds a pending payout at a time, and none holds
    a payout held by a chargeback (docs/rules.md, Chargebacks). The chargeback's hold updates
    the same row, so the two are ordered by its row lock: a payout is either held before the
    claim (never sent) or claimed before the hold (sent; staff get its refund id)."""
    claimed = Payout.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=payout_id,
        status=PayoutStatus.PENDING,
        held_at__isnull=True,
    ).update(claimed_until=now + PAYOUT_CLAIM, attempts=F("attempts") + 1)
    return claimed == 1


def payout_attempt(*, payout_id: int, now: datetime | None = None) -> str:
    """Send one pending payout to the gateway. Safe to run twice or concurrently.

    The gateway is called outside any transaction (it is an external system), with the payout's
    own idempotency key: if this worker dies after the gateway paid, the next attempt gets the
    same refund back instead of a second one.
    """
    now = now or timezone.now()
    if not _claim_payout(payout_id, now):
        if Payout.objects.filter(pk=payout_id, held_at__isnull=False).exists():
            return "held"
        return "skipped"
    payout = Payout.objects.select_related("order").get(pk=payout_id)
    try:
        result = get_gateway().refund(
            payout.payment_reference,
            payout.amount,
            payout.currency,
            payout.gateway_key,
            metadata={"payout": str(payout.public_id), "order_number": payout.order.number},
            # A pending refund is read back by its reference, never asked for again.
            known_reference=payout.gateway_reference or None,
        )
    except GatewayUnauthorized as exc:
        return _payout_wait_for_key(payout_id, str(exc), now)
    except GatewayTimeout as exc:
        # Unknown outcome: keep it pending and ask again (same key) after a short backoff.
        Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            claimed_until=None,
            failure_reason=str(exc)[:300],
            next_attempt_at=now + _backoff(payout.attempts),
        )
        return "timeout"
    except GatewayDeclined as exc:
        return _payout_settle_failed(payout_id, str(exc), now, definite=True)
    except GatewayError as exc:
        return _payout_settle_failed(payout_id, str(exc), now)
    if result.status == "pending":
        Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            claimed_until=None,
            gateway_reference=result.reference,
            next_attempt_at=now + _backoff(payout.attempts),
        )
        return "pending"
    return _payout_settle_succeeded(payout_id, result.reference, now)


def _backoff(attempts: int) -> timedelta:
    return PAYOUT_BACKOFF[min(max(attempts - 1, 0), len(PAYOUT_BACKOFF) - 1)]


@transaction.atomic
def _payout_settle_succeeded(payout_id: int, reference: str, now: datetime) -> str:
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    payout.succeed(gateway_reference=reference, at=now)
    payout.save()
    events.event_payout_succeeded(payout=payout, at=now)
    if payout.held_at is not None:
        # A chargeback opened while this payout was on its way: the money went out, and staff
        # submit its refund id to the bank (docs/rules.md, Chargebacks).
        chargeback = Chargeback.objects.filter(order_id=payout.order_id).order_by("-id").first()
        if chargeback is not None:
            events.event_chargeback_refund_paid(payout=payout, chargeback=chargeback, at=now)
    handler = hooks.payout_succeeded.get(payout.purpose)
    if handler is not None:
        handler(payout, now)
    return "succeeded"


@transaction.atomic
def _payout_settle_failed(
    payout_id: int, reason: str, now: datetime, *, definite: bool = False
) -> str:
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    payout.fail(reason=reason, next_attempt_at=now + _backoff(payout.attempts), definite=definite)
    payout.save()
    events.event_payout_failed(payout=payout, at=now)
    return "failed"


@transaction.atomic
def _payout_wait_for_key(payout_id: int, reason: str, now: datetime) -> str:
    """The gateway refused our credentials: the payout stays pending, is not retried until
    PAYOUT_KEY_WAIT has passed, and staff are alerted (docs/rules.md, Payouts)."""
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    Payout.objects.filter(pk=payout_id).update(
        claimed_until=None, failure_reason=reason[:300], next_attempt_at=now + PAYOUT_KEY_WAIT
    )
    payout.failure_reason = reason[:300]
    events.event_payout_key_refused(payout=payout, at=now)
    return "unauthorized"


@transaction.atomic
def payout_retry(*, payout: Payout, actor: User | None, now: datetime | None = None) -> Payout:
    """failed → pending on the same row (staff, or the automatic backoff). After a definite
    failure the gateway gets a new key (`Payout.gateway_key`); otherwise the same one."""
    now = now or timezone.now()
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout.pk)
    if not can_proceed(payout.retry):
        raise InvalidTransition(f"A {payout.status} payout cannot be retried.")
    payout.retry(at=now)
    payout.save()
    if actor is not None:
        events.event_payout_staff_action(
            payout=payout, actor=actor, kind="payout.retried", from_state="failed"
        )
    transaction.on_commit(lambda: payout_enqueue(payout_id=payout.pk))
    return payout


@transaction.atomic
def payout_cancel(*, payout: Payout, actor: User) -> Payout:
    """Staff give up on a failed payout; its reservation goes back to `refundable`."""
    if not actor.is_staff:
        raise NotAllowed("Only staff can cancel a payout.")
    order = order_lock(payout.order_id)
    payout = Payout.objects.select_for_update().get(pk=payout.pk)
    if not can_proceed(payout.cancel):
        raise InvalidTransition(f"A {payout.status} payout cannot be cancelled.")
    payout.cancel()
    payout.save()
    Order.objects.filter(pk=order.pk).update(reserved=F("reserved") - payout.amount)
    events.event_payout_staff_action(
        payout=payout, actor=actor, kind="payout.cancelled", from_state="failed"
    )
    return payout


def payouts_due(*, now: datetime, limit: int = 500) -> list[int]:
    """Pending payouts nobody holds (broker was down, worker died) and failed ones whose backoff
    has passed: the periodic re-dispatch sends them again."""
    return list(
        Payout.objects.filter(
            Q(status=PayoutStatus.PENDING, claimed_until__isnull=True)
            | Q(status=PayoutStatus.PENDING, claimed_until__lt=now)
            | Q(status=PayoutStatus.FAILED, next_attempt_at__lte=now, attempts__lt=8),
            # Held by a chargeback: released (and queued) when it closes, not before.
            held_at__isnull=True,
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def payouts_redispatch(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    ids = payouts_due(now=now)
    for payout_id in ids:
        payout = Payout.objects.get(pk=payout_id)
        if payout.status == PayoutStatus.FAILED:
            payout_retry(payout=payout, actor=None, now=now)
        else:
            payout_enqueue(payout_id=payout_id)
    return len(ids)
