"""Order and payout services: every write of the orders app goes through here (STYLE §1, §3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import can_proceed

from . import events, hooks, rules, windows
from .errors import (
    AmountExceedsRefundable,
    Duplicate,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
)
from .gateway import GatewayError, GatewayTimeout, get_gateway
from .models import (
    Message,
    Order,
    OrderItem,
    Payout,
    PayoutStatus,
    Shop,
    User,
)

log = logging.getLogger(__name__)

PAYOUT_CLAIM = timedelta(minutes=5)
PAYOUT_BACKOFF = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
]


# --- accounts -----------------------------------------------------------------------------------


def user_get_or_create(*, email: str, name: str = "") -> User:
    email = email.strip().lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, name=name)
        except IntegrityError:
            user = User.objects.get(email=email)
    return user


def shop_for_seller(*, seller: User) -> Shop:
    shop = seller.shops.order_by("id").first()
    if shop is not None:
        return shop
    from django.utils.text import slugify

    base = slugify(seller.name or seller.email.split("@")[0]) or "shop"
    slug = base
    n = 1
    while Shop.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return Shop.objects.create(owner=seller, slug=slug, name=seller.name or slug)


def shop_set_return_policy(*, shop: Shop, return_policy: timedelta, actor: User) -> Shop:
    if shop.owner_id != actor.pk:
        raise NotAllowed("Only the shop's owner can change its return policy.")
    try:
        windows.validate_return_policy(return_policy)
    except Exception as exc:
        raise ValidationFailed(
            "The return policy must be between 15 minutes and 30 days.",
            fields={"return_policy": ["Between 15 minutes and 30 days."]},
        ) from exc
    shop.return_policy = return_policy
    shop.save(update_fields=["return_policy", "updated_at"])
    return shop


# --- orders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemIn:
    sku: str
    title: str
    quantity: int
    unit_price: Decimal


@transaction.atomic
def order_ingest(
    *,
    number: str,
    buyer_email: str,
    buyer_name: str,
    seller_email: str,
    seller_name: str,
    currency: str,
    total: Decimal,
    payment_method: str,
    payment_reference: str,
    placed_at: datetime,
    items: list[ItemIn],
    deliver_by: datetime | None = None,
    card_brand: str = "",
    card_last4: str = "",
    actor: User | None = None,
) -> Order:
    """Take an order from the marketplace; accounts are created by email when new."""
    if sum((i.unit_price * i.quantity for i in items), Decimal(0)) != total:
        raise ValidationFailed(
            "The total must equal the sum of the line items.",
            fields={"total": ["Does not equal the sum of quantity × unit_price."]},
        )
    if Order.objects.filter(number=number).exists():
        raise Duplicate(f"Order {number} was already received.")
    buyer = user_get_or_create(email=buyer_email, name=buyer_name)
    seller = user_get_or_create(email=seller_email, name=seller_name)
    if buyer.pk == seller.pk:
        raise ValidationFailed(
            "The buyer and the seller must be different accounts.",
            fields={"seller": ["Same account as the buyer."]},
        )
    shop = shop_for_seller(seller=seller)
    try:
        with transaction.atomic():
            order = Order.objects.create(
                number=number,
                buyer=buyer,
                shop=shop,
                currency=currency,
                total=total,
                payment_method=payment_method,
                payment_reference=payment_reference,
                card_brand=card_brand,
                card_last4=card_last4,
                placed_at=placed_at,
                deliver_by=deliver_by,
                return_policy=shop.return_policy,
            )
    except IntegrityError as exc:
        raise Duplicate(f"Order {number} was already received.") from exc
    OrderItem.objects.bulk_create(
        OrderItem(
            order=order, sku=i.sku, title=i.title, quantity=i.quantity, unit_price=i.unit_price
        )
        for i in items
    )
    events.event_order_received(order=order, actor=actor)
    return order


def _lock_order(order: Order | str | int) -> Order:
    """Lock helper: the order row is always locked first (then case, then dispute)."""
    if isinstance(order, Order):
        key: dict[str, Any] = {"pk": order.pk}
    elif isinstance(order, int):
        key = {"pk": order}
    else:
        key = {"number": order}
    # FOR NO KEY UPDATE: lockers of the order still exclude each other, but a row merely
    # referencing it (an event or payout insert takes FOR KEY SHARE on the order) is not blocked.
    # With plain FOR UPDATE a sweep holding a case and inserting its event deadlocked with a
    # user action holding the order and waiting for that case.
    return Order.objects.select_for_update(no_key=True).select_related("shop", "buyer").get(**key)


def order_lock(order: Order | str | int) -> Order:
    return _lock_order(order)


@transaction.atomic
def order_ship(
    *,
    order: Order,
    carrier: str,
    tracking_number: str,
    shipped_at: datetime | None,
    actor: User | None,
    now: datetime | None = None,
) -> Order:
    now = now or timezone.now()
    order = _lock_order(order)
    shipped_at = shipped_at or now
    if (refusal := rules.order_feed_refusal(order=order, user=actor, event="ship")) is not None:
        raise refusal
    if shipped_at < order.placed_at or shipped_at > now + timedelta(minutes=5):
        raise ValidationFailed(
            "shipped_at must be between placed_at and now.",
            fields={"shipped_at": ["Between placed_at and now."]},
        )
    order.ship(carrier=carrier, tracking_number=tracking_number, shipped_at=shipped_at)
    order.save()
    events.event_order_shipped(order=order, actor=actor)
    return order


@transaction.atomic
def order_deliver(
    *,
    order: Order,
    delivered_at: datetime | None,
    actor: User | None,
    now: datetime | None = None,
) -> Order:
    now = now or timezone.now()
    order = _lock_order(order)
    delivered_at = delivered_at or now
    if (refusal := rules.order_feed_refusal(order=order, user=actor, event="deliver")) is not None:
        raise refusal
    earliest = order.shipped_at or order.placed_at
    if delivered_at < earliest or delivered_at > now + timedelta(minutes=5):
        raise ValidationFailed(
            "delivered_at must be between shipping and now.",
            fields={"delivered_at": ["Between shipped_at and now."]},
        )
    from_state = order.status
    order.deliver(delivered_at=delivered_at)
    order.save()
    events.event_order_delivered(order=order, actor=actor, from_state=from_state)
    return order


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
    """Instant cancellation: unshipped, within 24 h of placing, full refund at once (SPEC §3)."""
    now = now or timezone.now()
    order = _lock_order(order)
    holds = rules.order_cancel_holds(orders=[order])
    refusal = rules.order_cancel_refusal(order=order, user=actor, now=now, holds=holds)
    if refusal is not None:
        raise refusal
    return _cancel(order, actor=actor, reason="buyer_cancelled", now=now)


@transaction.atomic
def order_cancel_out_of_stock(*, order: Order, actor: User, now: datetime | None = None) -> Payout:
    now = now or timezone.now()
    order = _lock_order(order)
    holds = rules.order_cancel_holds(orders=[order])
    refusal = rules.order_cancel_out_of_stock_refusal(order=order, user=actor, holds=holds)
    if refusal is not None:
        raise refusal
    return _cancel(order, actor=actor, reason="out_of_stock", now=now)


@transaction.atomic
def message_post_on_order(
    *, order: Order, author: User, body: str, case_id: UUID | None = None
) -> Message:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed(
            "Write a message first.", fields={"body": ["This field is required."]}
        )
    if len(body) > 5000:
        raise ValidationFailed(
            "Messages are at most 5000 characters.", fields={"body": ["At most 5000 characters."]}
        )
    order = Order.objects.select_related("shop").get(pk=order.pk)
    if (refusal := rules.order_message_refusal(order=order, user=author)) is not None:
        raise refusal
    other = "seller" if author.pk == order.buyer_id else "buyer"
    message = Message.objects.create(order=order, author=author, body=body, case_id=case_id)
    events.event_message_posted(
        order=order, actor=author, notify_role=other, case_id=case_id, excerpt=body
    )
    return message


# --- payouts ------------------------------------------------------------------------------------


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
        raise AmountExceedsRefundable(
            f"At most {order.refundable} {order.currency} can still be refunded on this order."
        )
    try:
        with transaction.atomic():
            updated = Order.objects.filter(pk=order.pk).update(reserved=F("reserved") + amount)
            assert updated == 1
            payout = Payout.objects.create(
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
    """Conditional update: exactly one worker holds a pending payout at a time."""
    claimed = Payout.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=payout_id,
        status=PayoutStatus.PENDING,
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
        return "skipped"
    payout = Payout.objects.get(pk=payout_id)
    try:
        result = get_gateway().refund(
            payout.payment_reference, payout.amount, payout.currency, payout.idempotency_key
        )
    except GatewayTimeout as exc:
        # Unknown outcome: keep it pending and ask again (same key) after a short backoff.
        Payout.objects.filter(pk=payout_id, status=PayoutStatus.PENDING).update(
            claimed_until=None,
            failure_reason=str(exc)[:300],
            next_attempt_at=now + _backoff(payout.attempts),
        )
        return "timeout"
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
    handler = hooks.payout_succeeded.get(payout.purpose)
    if handler is not None:
        handler(payout, now)
    return "succeeded"


@transaction.atomic
def _payout_settle_failed(payout_id: int, reason: str, now: datetime) -> str:
    payout = Payout.objects.select_for_update().select_related("order__shop").get(pk=payout_id)
    if payout.status != PayoutStatus.PENDING:
        return "already-settled"
    payout.fail(reason=reason, next_attempt_at=now + _backoff(payout.attempts))
    payout.save()
    events.event_payout_failed(payout=payout, at=now)
    return "failed"


@transaction.atomic
def payout_retry(*, payout: Payout, actor: User | None, now: datetime | None = None) -> Payout:
    """failed → pending on the same row and key (staff, or the automatic backoff)."""
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
    order = _lock_order(payout.order_id)
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
