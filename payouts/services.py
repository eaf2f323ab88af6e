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
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_fsm import can_proceed

from kernel.errors import (
    AmountExceedsRefundable,
    DomainError,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
)
from kernel.money import format_money
from kernel.text import text_refusal
from orders import rules
from orders.models import Event, Order, PaymentMethod, User
from orders.services import order_lock

from . import events, hooks
from .gateway import (
    GatewayDeclined,
    GatewayError,
    GatewayTimeout,
    GatewayUnauthorized,
    get_gateway,
)
from .models import Chargeback, Payout, PayoutStatus
from .rules import chargeback_open_for

log = logging.getLogger(__name__)


PAYOUT_CLAIM = timedelta(minutes=5)
# A payout whose gateway refused our key waits this long before the re-dispatch asks again
# (staff were alerted; the key is theirs to fix).
PAYOUT_KEY_WAIT = timedelta(hours=1)
# A refund the gateway holds pending is settled by its webhook; if none came (a lost webhook),
# the re-dispatch reads it back this long after it was last heard of (docs/rules.md, Payouts →
# Stripe).
PAYOUT_PENDING_READBACK = timedelta(minutes=30)
# Stripe forgets an idempotency key after 24 hours: an outcome still unknown this long after the
# key was first sent is looked for among the payment's refunds before anything is posted.
PAYOUT_KEY_MEMORY = timedelta(hours=23)
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
    if not get_gateway().pays(payout.payment_method):
        # Never sent: the gateway could only refuse it (docs/rules.md, Payouts).
        _payout_await_staff(payout, timezone.now())
        return payout
    transaction.on_commit(lambda: payout_enqueue(payout_id=payout.pk))
    return payout


def _payout_await_staff(payout: Payout, now: datetime) -> None:
    """pending → awaiting_staff, staff told once; the caller holds the payout (or created it)."""
    label = PaymentMethod(payout.payment_method).label
    payout.await_staff(
        reason=f"The payment gateway cannot refund a {label} payment: pay it outside the "
        "portal, then mark it paid there."
    )
    payout.save()
    events.event_payout_awaiting_staff(payout=payout, at=now)


def _chargeback_open(order: Order) -> bool:
    return chargeback_open_for(order.pk).exists()


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
    ).update(
        claimed_until=now + PAYOUT_CLAIM,
        attempts=F("attempts") + 1,
        key_sent_at=Coalesce(F("key_sent_at"), Value(now)),
    )
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
    gateway = get_gateway()
    if not gateway.pays(payout.payment_method):
        # Created before the gateway changed (the fake pays every method): it waits for staff.
        return _payout_settle_awaiting_staff(payout_id, now)
    try:
        result = gateway.refund(
            payout.payment_reference,
            payout.amount,
            payout.currency,
            payout.gateway_key,
            metadata={"payout": str(payout.public_id), "order_number": payout.order.number},
            # A pending refund is read back by its reference, never asked for again.
            known_reference=payout.gateway_reference or None,
            search_since=_key_maybe_forgotten(payout, now),
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
        # The webhook settles it; the re-dispatch reads it back only if none came.
        Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            claimed_until=None,
            gateway_reference=result.reference,
            next_attempt_at=now + PAYOUT_PENDING_READBACK,
        )
        return "pending"
    return _payout_settle_succeeded(payout_id, result.reference, now)


def _key_maybe_forgotten(payout: Payout, now: datetime) -> datetime | None:
    """When the key was first sent, if the gateway may have forgotten it while the outcome is
    still unknown (no refund reference): the gateway then looks before it posts."""
    if payout.gateway_reference or payout.key_sent_at is None:
        return None
    return payout.key_sent_at if now - payout.key_sent_at >= PAYOUT_KEY_MEMORY else None


def _backoff(attempts: int) -> timedelta:
    return PAYOUT_BACKOFF[min(max(attempts - 1, 0), len(PAYOUT_BACKOFF) - 1)]


@transaction.atomic
def _payout_settle_succeeded(payout_id: int, reference: str, now: datetime) -> str:
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    payout.succeed(gateway_reference=reference, at=now)
    payout.save()
    _payout_succeeded_effects(payout, now, from_state=PayoutStatus.PENDING, actor=None)
    return "succeeded"


def _payout_succeeded_effects(
    payout: Payout, now: datetime, *, from_state: str, actor: User | None
) -> None:
    """What every succeeded payout does, whoever paid it: the parties are told, and the case,
    dispute or cancellation it pays settles (`hooks.payout_succeeded`)."""
    events.event_payout_succeeded(payout=payout, at=now, from_state=from_state, actor=actor)
    if payout.held_at is not None:
        # A chargeback opened while this payout was on its way: the money went out, and staff
        # submit its refund id to the bank (docs/rules.md, Chargebacks).
        chargeback = Chargeback.objects.filter(order_id=payout.order_id).order_by("-id").first()
        if chargeback is not None:
            events.event_chargeback_refund_paid(payout=payout, chargeback=chargeback, at=now)
    handler = hooks.payout_succeeded.get(payout.purpose)
    if handler is not None:
        handler(payout, now)


@transaction.atomic
def _payout_settle_awaiting_staff(payout_id: int, now: datetime) -> str:
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    _payout_await_staff(payout, now)
    return "awaiting-staff"


def payout_mark_paid_outside_refusal(*, payout: Payout, actor: User) -> DomainError | None:
    """Why staff may not mark this payout paid outside the portal now, or None: only staff, and
    only a payout the gateway will not pay (waiting for staff) or refused (failed). A pending
    one may still be paid by the gateway, so marking it would risk paying twice."""
    if not actor.is_staff:
        return NotAllowed("Only staff can mark a payout paid outside the portal.")
    if not can_proceed(payout.mark_paid_outside):
        return InvalidTransition(
            f"A {payout.get_status_display().lower()} payout cannot be marked paid outside the "
            "portal: only one waiting for staff or one that failed."
        )
    if payout.held_at is not None:
        # The buyer's bank may give the money back itself: paying by hand now could pay twice
        # (docs/rules.md, Chargebacks).
        return InvalidTransition(
            "The order's payment is in a chargeback: nothing is paid until the bank decides."
        )
    return None


@transaction.atomic
def payout_mark_paid_outside(
    *, payout: Payout, actor: User, reference: str, note: str, now: datetime | None = None
) -> Payout:
    """Staff paid this payout outside the portal (PayPal, a bank transfer): it succeeds, and what
    it pays settles as if the gateway had paid it (docs/rules.md, Payouts)."""
    now = now or timezone.now()
    problems: dict[str, list[str]] = {}
    # The raw value is judged before its ends are stripped, so a trailing line break in the
    # reference is refused rather than silently dropped (docs/rules.md, Text fields).
    if refusal := text_refusal(reference, multi_line=False):
        problems["reference"] = [refusal]
    elif not reference.strip():
        problems["reference"] = ["Say where the money went (a transaction or transfer reference)."]
    elif len(reference.strip()) > Payout._meta.get_field("paid_outside_reference").max_length:  # type: ignore[operator]
        problems["reference"] = ["At most 200 characters."]
    if refusal := text_refusal(note, multi_line=True):
        problems["note"] = [refusal]
    elif not note.strip():
        problems["note"] = ["Say how and why it was paid outside the portal."]
    reference, note = reference.strip(), note.strip()
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout.pk)
    if (refused := payout_mark_paid_outside_refusal(payout=payout, actor=actor)) is not None:
        raise refused
    if problems:
        raise ValidationFailed(" ".join(m for ms in problems.values() for m in ms), fields=problems)
    from_state = payout.status
    payout.mark_paid_outside(actor=actor, reference=reference, note=note, at=now)
    payout.save()
    events.event_payout_paid_outside(payout=payout, actor=actor, from_state=from_state)
    _payout_succeeded_effects(payout, now, from_state=from_state, actor=actor)
    return payout


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
    # One refused key stops every payout: staff hear of it once an hour, not once a payout (a
    # thousand waiting payouts would be a thousand emails). Two workers refused at the same
    # instant may both alert; that is the worst case.
    alerted = Event.objects.filter(
        kind="payout.key_refused",
        created_at__gt=now - PAYOUT_KEY_WAIT,
        payload__notify__has_key="staff",
    ).exists()
    events.event_payout_key_refused(payout=payout, at=now, alert=not alerted)
    return "unauthorized"


# --- what the gateway tells us by webhook (docs/architecture.md, Stripe webhooks) ---------------
# Each runs inside the transaction that records the event, and never calls the gateway.


def payout_refund_succeeded(*, payout: Payout, reference: str, at: datetime) -> str:
    """The gateway says the refund went through: the payout settles as if its call had said so
    (the case, dispute or cancellation settles too). A settled payout does not move."""
    return _payout_settle_succeeded(payout.pk, reference, at)


def payout_refund_pending(*, payout: Payout, reference: str, at: datetime) -> str:
    """The gateway holds the refund pending: remember its id (our own call may have timed out
    before we learnt it) and read it back only if nothing is heard of it for
    PAYOUT_PENDING_READBACK. Only a pending payout is touched: an older event never moves a
    settled one back."""
    updated = (
        Payout.objects.filter(pk=payout.pk, status=PayoutStatus.PENDING)
        .filter(Q(gateway_reference="") | Q(gateway_reference=reference))
        .update(gateway_reference=reference, next_attempt_at=at + PAYOUT_PENDING_READBACK)
    )
    return "pending" if updated else "already-settled"


@transaction.atomic
def payout_refund_failed(*, payout: Payout, reference: str, reason: str, at: datetime) -> str:
    """The gateway says the refund failed or was cancelled. A pending payout fails definitely
    (no money moved; staff retry or pay another way). A payout that already succeeded with this
    very refund is not moved back: the card network returned the money after the refund had
    succeeded, so staff are alerted once to pay the buyer another way (docs/rules.md, Payouts →
    Stripe)."""
    locked = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout.pk)
    if locked.status == PayoutStatus.PENDING:
        return _payout_settle_failed(locked.pk, reason, at, definite=True)
    if locked.status != PayoutStatus.SUCCEEDED or locked.gateway_reference != reference:
        return "already-settled"
    # Stripe announces one change under several event types (refund.failed,
    # charge.refund.updated…), each with its own id: alert once per refund.
    if locked.order.events.filter(kind="payout.reversed", payload__reference=reference).exists():
        return "already-alerted"
    events.event_payout_reversed(payout=locked, reference=reference, reason=reason, at=at)
    return "reversed"


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
    """Staff give up on a failed payout, or one waiting for staff; its reservation goes back to
    `refundable`."""
    if not actor.is_staff:
        raise NotAllowed("Only staff can cancel a payout.")
    order = order_lock(payout.order_id)
    payout = Payout.objects.select_for_update().get(pk=payout.pk)
    if not can_proceed(payout.cancel):
        raise InvalidTransition(f"A {payout.status} payout cannot be cancelled.")
    from_state = payout.status
    payout.cancel()
    payout.save()
    Order.objects.filter(pk=order.pk).update(reserved=F("reserved") - payout.amount)
    events.event_payout_staff_action(
        payout=payout, actor=actor, kind="payout.cancelled", from_state=from_state
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
