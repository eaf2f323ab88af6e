"""Order services: every write of the orders app goes through here (docs/architecture.md, Dependency
direction; Services and selectors).

Cancelling an order pays its money back, so the cancellations live in `payouts.services`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from kernel import windows
from kernel.errors import (
    DomainError,
    Duplicate,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
)
from kernel.security import security_event

from . import events, rules
from .models import (
    ApiScope,
    ApiToken,
    IdempotencyKey,
    Message,
    Order,
    OrderItem,
    Shop,
    User,
)

log = logging.getLogger(__name__)

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
    for _attempt in range(SHOP_SLUG_ATTEMPTS):
        slug = base
        n = 1
        while Shop.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        try:
            # Two ingests of sellers with one name can pick the same free slug at once.
            with transaction.atomic():
                return Shop.objects.create(owner=seller, slug=slug, name=seller.name or slug)
        except IntegrityError:
            continue
    raise Duplicate(f"No free shop address for {seller.email}; try again.")


# Tries at a free slug before giving up (only ever met by concurrent ingests of one name).
SHOP_SLUG_ATTEMPTS = 5


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


@dataclass(frozen=True)
class OrderRow:
    """One order as the marketplace sends it, validated by the API's input serializer."""

    number: str
    buyer_email: str
    buyer_name: str
    seller_email: str
    seller_name: str
    currency: str
    total: Decimal
    payment_method: str
    payment_reference: str
    placed_at: datetime
    items: list[ItemIn]
    deliver_by: datetime | None = None
    card_brand: str = ""
    card_last4: str = ""


# At most this many orders per call: the API's batch limit (docs/api.md, Orders, Batch ingest).
ORDERS_INGEST_MAX = 500


def _email_key(email: str) -> str:
    return email.strip().lower()


def _users_by_email(names: dict[str, str]) -> dict[str, User]:
    """The accounts of these emails (lower-cased → name for a new one), creating the missing
    ones: one read and one insert for any number."""
    found = {u.email: u for u in User.objects.filter(email__in=list(names))}
    missing = [email for email in names if email not in found]
    if missing:
        new = []
        for email in missing:
            user = User(email=email, name=names[email])
            user.set_unusable_password()
            new.append(user)
        try:
            with transaction.atomic():
                User.objects.bulk_create(new)
            found.update((u.email, u) for u in new)
        except IntegrityError:
            # Another request created one of them meanwhile: take each one by one.
            for email in missing:
                found[email] = user_get_or_create(email=email, name=names[email])
    return found


def _shops_for_sellers(sellers: list[User]) -> dict[int, Shop]:
    """Each seller's first shop, a new one for a seller without (the slug rule of
    `shop_for_seller`): a constant number of queries for any number of sellers."""
    from django.utils.text import slugify

    shops: dict[int, Shop] = {}
    for shop in Shop.objects.filter(owner__in=sellers).order_by("owner_id", "-id"):
        shops[shop.owner_id] = shop  # the last written per owner is its lowest id
    bare = [seller for seller in sellers if seller.pk not in shops]
    if not bare:
        return shops
    bases = {
        seller.pk: slugify(seller.name or seller.email.split("@")[0]) or "shop" for seller in bare
    }
    wanted = Q()
    for base in set(bases.values()):
        wanted |= Q(slug=base) | Q(slug__startswith=f"{base}-")
    for _attempt in range(SHOP_SLUG_ATTEMPTS):
        taken = set(Shop.objects.filter(wanted).values_list("slug", flat=True))
        new = []
        for seller in bare:
            base = slug = bases[seller.pk]
            n = 1
            while slug in taken:
                n += 1
                slug = f"{base}-{n}"
            taken.add(slug)
            new.append(Shop(owner=seller, slug=slug, name=seller.name or slug))
        try:
            # A concurrent ingest may take one of these slugs first: read them again and retry.
            with transaction.atomic():
                Shop.objects.bulk_create(new)
        except IntegrityError:
            continue
        shops.update((shop.owner_id, shop) for shop in new)
        return shops
    for seller in bare:
        shops[seller.pk] = shop_for_seller(seller=seller)
    return shops


@transaction.atomic
def orders_ingest(*, rows: list[OrderRow], actor: User | None = None) -> list[Order | DomainError]:
    """Take orders from the marketplace, each on its own: the result at each row's index is the
    order written or the domain error that refused it, and a refused row never blocks another
    (docs/rules.md, Orders). Accounts are created by email when new. A number already received,
    or received earlier in the same rows, is a `Duplicate`.

    The one implementation for one order (`order_ingest`) and a batch: a constant number of
    queries however many rows (docs/architecture.md, Batch ingest)."""
    if len(rows) > ORDERS_INGEST_MAX:
        raise ValidationFailed(
            f"At most {ORDERS_INGEST_MAX} orders at once.",
            fields={"orders": [f"At most {ORDERS_INGEST_MAX} orders."]},
        )
    results: list[Order | DomainError | None] = [None] * len(rows)
    existing = set(
        Order.objects.filter(number__in={row.number for row in rows}).values_list(
            "number", flat=True
        )
    )
    taken: set[str] = set()
    accepted: list[int] = []
    names: dict[str, str] = {}
    for index, row in enumerate(rows):
        if sum((i.unit_price * i.quantity for i in row.items), Decimal(0)) != row.total:
            results[index] = ValidationFailed(
                "The total must equal the sum of the line items.",
                fields={"total": ["Does not equal the sum of quantity × unit_price."]},
            )
        elif row.number in existing or row.number in taken:
            results[index] = Duplicate(f"Order {row.number} was already received.")
        elif _email_key(row.buyer_email) == _email_key(row.seller_email):
            results[index] = ValidationFailed(
                "The buyer and the seller must be different accounts.",
                fields={"seller": ["Same account as the buyer."]},
            )
        else:
            taken.add(row.number)
            accepted.append(index)
            names.setdefault(_email_key(row.buyer_email), row.buyer_name)
            names.setdefault(_email_key(row.seller_email), row.seller_name)
    users = _users_by_email(names)
    sellers = {}
    for index in accepted:
        seller = users[_email_key(rows[index].seller_email)]
        sellers[seller.pk] = seller
    shops = _shops_for_sellers(list(sellers.values()))
    orders: dict[int, Order] = {}
    for index in accepted:
        row = rows[index]
        shop = shops[users[_email_key(row.seller_email)].pk]
        orders[index] = Order(
            number=row.number,
            buyer=users[_email_key(row.buyer_email)],
            shop=shop,
            currency=row.currency,
            total=row.total,
            payment_method=row.payment_method,
            payment_reference=row.payment_reference,
            card_brand=row.card_brand,
            card_last4=row.card_last4,
            placed_at=row.placed_at,
            deliver_by=row.deliver_by,
            return_policy=shop.return_policy,
        )
    try:
        with transaction.atomic():
            Order.objects.bulk_create(orders.values())
    except IntegrityError:
        # Another request took one of these numbers meanwhile: one by one, that one a 409.
        for index, order in list(orders.items()):
            order.pk = None
            try:
                with transaction.atomic():
                    order.save(force_insert=True)
            except IntegrityError:
                results[index] = Duplicate(f"Order {order.number} was already received.")
                del orders[index]
    OrderItem.objects.bulk_create(
        OrderItem(
            order=order, sku=i.sku, title=i.title, quantity=i.quantity, unit_price=i.unit_price
        )
        for index, order in orders.items()
        for i in rows[index].items
    )
    events.events_save(
        [events.order_received_event(order=order, actor=actor) for order in orders.values()]
    )
    for index, order in orders.items():
        results[index] = order
    return [result for result in results if result is not None]


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
    """Take one order from the marketplace (`orders_ingest` with one row); raises its error."""
    row = OrderRow(
        number=number,
        buyer_email=buyer_email,
        buyer_name=buyer_name,
        seller_email=seller_email,
        seller_name=seller_name,
        currency=currency,
        total=total,
        payment_method=payment_method,
        payment_reference=payment_reference,
        placed_at=placed_at,
        items=items,
        deliver_by=deliver_by,
        card_brand=card_brand,
        card_last4=card_last4,
    )
    (result,) = orders_ingest(rows=[row], actor=actor)
    if isinstance(result, DomainError):
        raise result
    return result


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


# --- idempotency keys (docs/api.md, Idempotency) -------------------------------------------------

# How long an answer is replayed for its key; after that the key is new again.
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)
# How long a running request holds its key. Longer than any request may run (gunicorn kills a
# worker after 30 s), so only a crashed request's claim ever expires, and a retry then runs the
# request again (docs/architecture.md, Idempotent writes).
IDEMPOTENCY_CLAIM = timedelta(seconds=60)


@dataclass(frozen=True)
class IdempotencyClaim:
    """A key held by the request that runs now; `until` tells this claim from a later one."""

    key_id: int
    until: datetime


def idempotency_key_claim(
    *, user: User, key: str, fingerprint: str, now: datetime
) -> IdempotencyClaim | IdempotencyKey:
    """Hold `key` of `user` for a request with `fingerprint`, or return the answer to replay.

    Raises `IdempotencyKeyReused` when the key came with another request, `IdempotencyKeyInUse`
    while the key's first request still runs. Commits on its own, before the request runs, so a
    concurrent request with the key sees the claim."""
    until = now + IDEMPOTENCY_CLAIM
    for _ in range(3):  # the row may be deleted (released, expired) between insert and read
        with transaction.atomic():
            try:
                with transaction.atomic():
                    row = IdempotencyKey.objects.create(
                        user=user,
                        key=key,
                        fingerprint=fingerprint,
                        created_at=now,
                        locked_until=until,
                    )
                return IdempotencyClaim(key_id=row.pk, until=until)
            except IntegrityError:
                pass  # the key is known: a concurrent insert waited for its commit
            found = IdempotencyKey.objects.select_for_update().filter(user=user, key=key).first()
            if found is None:
                continue
            if found.created_at <= now - IDEMPOTENCY_KEY_LIFETIME:
                # Older than its lifetime and not yet cleaned up: a new key.
                found.fingerprint, found.created_at, found.locked_until = fingerprint, now, until
                found.status_code, found.content_type, found.headers, found.body = None, "", {}, b""
                found.save()
                return IdempotencyClaim(key_id=found.pk, until=until)
            if found.fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was used with another request (method, path or body) "
                    "in the last 24 hours; send a new key for a new request."
                )
            if found.status_code is not None:
                return found
            if found.locked_until is not None and found.locked_until > now:
                raise IdempotencyKeyInUse(
                    "A request with this Idempotency-Key is still running; retry once it is "
                    "answered."
                )
            # Its request crashed before answering: nothing of it committed, so it runs again.
            found.locked_until = until
            found.save(update_fields=["locked_until"])
            return IdempotencyClaim(key_id=found.pk, until=until)
    raise IdempotencyKeyInUse("This Idempotency-Key is changing hands; retry.")


def idempotency_key_store(
    *,
    claim: IdempotencyClaim,
    status_code: int,
    content_type: str,
    headers: dict[str, str],
    body: bytes,
) -> bool:
    """Keep the answer of the claim's request; called inside the request's own transaction so the
    answer commits with its writes. False when the claim was lost (it outlived
    IDEMPOTENCY_CLAIM and a retry took the key): the caller rolls its writes back."""
    stored = IdempotencyKey.objects.filter(pk=claim.key_id, locked_until=claim.until).update(
        locked_until=None,
        status_code=status_code,
        content_type=content_type,
        headers=headers,
        body=body,
    )
    return stored == 1


def idempotency_key_release(*, claim: IdempotencyClaim) -> None:
    """Free the key of a request whose answer is not kept: a retry runs it afresh."""
    IdempotencyKey.objects.filter(pk=claim.key_id, locked_until=claim.until).delete()


def idempotency_keys_expire(*, now: datetime, batch_size: int | None = None) -> int:
    """Delete keys older than IDEMPOTENCY_KEY_LIFETIME (the hourly beat task), in batches; a key
    whose request still runs is left to finish."""
    cutoff = now - IDEMPOTENCY_KEY_LIFETIME
    size = batch_size or settings.SWEEP_BATCH_SIZE
    due = IdempotencyKey.objects.filter(created_at__lte=cutoff).exclude(locked_until__gt=now)
    deleted = 0
    while ids := list(due.values_list("pk", flat=True)[:size]):
        deleted += due.filter(pk__in=ids).delete()[0]
    return deleted


# --- API tokens (docs/api.md, Authentication) ---------------------------------------------------

# last_used_at is written at most this often per token, not on every request.
API_TOKEN_TOUCH_EVERY = timedelta(minutes=1)
# A new key: a marker that secret scanners can find, then 256 random bits.
API_TOKEN_KEY_MARKER = "rpt_"  # noqa: S105 - a public marker, not a secret


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown to its owner once, never stored


def _api_token_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = set(scopes)
    unknown = sorted(chosen - set(ApiScope.values))
    if unknown:
        raise ValidationFailed(
            f"Unknown scope {', '.join(unknown)}.", fields={"scopes": ["Unknown scope."]}
        )
    if not chosen:
        raise ValidationFailed("A token needs a scope.", fields={"scopes": ["Choose a scope."]})
    return [scope for scope in ApiScope.values if scope in chosen]


def _api_token_expiry(*, now: datetime, days: int | None) -> datetime:
    if days is None:
        days = settings.API_TOKEN_DAYS
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationFailed(
            f"A token lives 1 to {settings.API_TOKEN_MAX_DAYS} days.",
            fields={"days": [f"Between 1 and {settings.API_TOKEN_MAX_DAYS}."]},
        )
    return now + timedelta(days=days)


def api_token_issue(
    *,
    user: User,
    scopes: Iterable[str],
    name: str = "",
    days: int | None = None,
    via_token: ApiToken | None,
    actor: User | None,
    how: str,
    request: HttpRequest | None = None,
) -> IssuedToken:
    """A new key for `user` with these scopes, which the request (`via_token`, when it came with
    one) must hold itself. `how` names the interface in the security log (api, command, ...)."""
    chosen = _api_token_scopes(scopes)
    refusal = rules.api_token_grant_refusal(user=user, token=via_token, scopes=chosen)
    if refusal is not None:
        raise refusal
    now = timezone.now()
    key = API_TOKEN_KEY_MARKER + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[: ApiToken.PREFIX_LENGTH],
        digest=ApiToken.digest_of(key),
        scopes=chosen,
        created_at=now,
        expires_at=_api_token_expiry(now=now, days=days),
    )
    security_event(
        "api_token_created",
        request=request,
        actor=actor,
        token=str(token.public_id),
        owner=user.email,
        scopes=",".join(chosen),
        expires_at=token.expires_at.isoformat(),
        how=how,
    )
    return IssuedToken(token=token, key=key)


def api_token_revoke(
    *,
    token: ApiToken,
    actor: User,
    via_token: ApiToken | None,
    how: str,
    request: HttpRequest | None = None,
) -> bool:
    """Revoke at once; False when it already was (revoking twice logs once)."""
    refusal = rules.api_token_manage_refusal(user=actor, token=via_token, target=token)
    if refusal is not None:
        raise refusal
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    if not revoked:
        return False
    token.revoked_at = now
    security_event(
        "api_token_revoked",
        request=request,
        actor=actor,
        token=str(token.public_id),
        owner=token.user.email,
        how=how,
    )
    return True


def api_token_rotate(
    *,
    token: ApiToken,
    actor: User,
    via_token: ApiToken | None,
    days: int | None = None,
    request: HttpRequest | None = None,
) -> IssuedToken:
    """A new key with the old one's name and scopes; the old key is revoked at once, in the same
    transaction, so exactly one of the two works afterwards (docs/api.md, Authentication)."""
    refusal = rules.api_token_manage_refusal(user=actor, token=via_token, target=token)
    if refusal is not None:
        raise refusal
    with transaction.atomic():
        # The lock makes two concurrent rotations of one key give one new key, not two.
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if not locked.is_usable(timezone.now()):
            raise InvalidTransition("This token is revoked or expired; issue a new one instead.")
        issued = api_token_issue(
            user=token.user,
            scopes=locked.scopes,
            name=locked.name,
            days=days,
            via_token=via_token,
            actor=actor,
            how="rotation",
            request=request,
        )
        api_token_revoke(
            token=locked, actor=actor, via_token=via_token, how="rotation", request=request
        )
    return issued


def api_token_touch(*, token: ApiToken, now: datetime) -> None:
    """Note that the key was used, at most once per API_TOKEN_TOUCH_EVERY: a write per request
    would make every read a write."""
    stale = now - API_TOKEN_TOUCH_EVERY
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
    ).update(last_used_at=now)
    token.last_used_at = now
