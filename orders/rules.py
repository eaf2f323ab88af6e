"""The order's rules, each once: who the viewer is, and what may happen to the order now.

A `…_refusal` function answers "may this happen now, and if not, why": `None`, or the domain
error (its code and message) that the service raises. The service raises it under its row lock;
the API's `actions`, the pages' buttons and the admin show the same answer, so nothing is
offered that the service would refuse (docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from django.conf import settings
from django_fsm import can_proceed

from kernel import windows
from kernel.errors import DomainError, InvalidTransition, NotAllowed, WindowClosed

from . import hooks
from .models import ApiScope, ApiToken, Order, OrderStatus, PaymentMethod, User

Party = Literal["buyer", "seller"]
Role = Literal["buyer", "seller", "staff", "marketplace", "other"]
ROLES: tuple[Role, ...] = ("buyer", "seller", "staff", "marketplace", "other")


def order_party(*, order: Order, user_id: int | None) -> Party | None:
    """The party of the order this account is, if any; everything about roles builds on it."""
    if user_id is not None and order.buyer_id == user_id:
        return "buyer"
    if user_id is not None and order.shop.owner_id == user_id:
        return "seller"
    return None


def order_role(*, order: Order, user: User) -> Role:
    """The viewer's role on the order (and on its cases and dispute). A staff member who is a
    party acts as that party; an inactive account is nobody's staff."""
    party = order_party(order=order, user_id=user.pk)
    if party is not None:
        return party
    if user.is_staff and user.is_active:
        return "staff"
    return "marketplace" if user.is_marketplace else "other"


def author_role(*, order: Order, author_id: int | None) -> Literal["buyer", "seller", "staff"]:
    """Who wrote, acted or uploaded on the order's thread, case or dispute: only the parties
    and staff ever can, so anyone else is staff."""
    return order_party(order=order, user_id=author_id) or "staff"


# --- cancellation ---------------------------------------------------------------------------


def order_cancel_holds(*, orders: Iterable[Order]) -> dict[int, str]:
    """Why an app above holds each of these orders from being cancelled (a refund case is
    open…), by order id: one query per registered hold for any number of orders, none when no
    order is unshipped. Services call it after taking the order's lock, so it sees every
    commit before theirs."""
    ids = [order.pk for order in orders if order.status == OrderStatus.PAID]
    holds: dict[int, str] = {}
    if ids:
        for hold in hooks.cancel_holds:
            for order_id, reason in hold(ids).items():
                holds.setdefault(order_id, reason)
    return holds


def _cancel_refusal(order: Order, holds: Mapping[int, str]) -> DomainError | None:
    if not can_proceed(order.cancel):
        return InvalidTransition(
            f"Order {order.number} is {order.status}; only unshipped orders can be cancelled."
        )
    if order.pk in holds:
        return InvalidTransition(holds[order.pk])
    return None


def order_cancel_refusal(
    *, order: Order, user: User, now: datetime, holds: Mapping[int, str]
) -> DomainError | None:
    """Instant cancellation by the buyer: unshipped, within 24 h of placing, nothing holding it.
    `holds` is `order_cancel_holds(orders=…)` of (at least) this order."""
    if order.buyer_id != user.pk:
        return NotAllowed("Only the buyer can cancel this order.")
    until = windows.instant_cancel_until(placed_at=order.placed_at)
    if now > until:
        return WindowClosed(
            "Instant cancellation closed at "
            f"{windows.format_both(until, user.time_zone)}; file a refund request instead."
        )
    return _cancel_refusal(order, holds)


def order_cancel_out_of_stock_refusal(
    *, order: Order, user: User, holds: Mapping[int, str]
) -> DomainError | None:
    """The seller cancels an unshipped order as out of stock, unless something holds it."""
    if order.shop.owner_id != user.pk:
        return NotAllowed("Only the seller can cancel an order as out of stock.")
    return _cancel_refusal(order, holds)


# --- the thread and the marketplace's shipping events ----------------------------------------


def order_message_refusal(*, order: Order, user: User) -> DomainError | None:
    if order_party(order=order, user_id=user.pk) is None:
        return NotAllowed("Only the buyer and the seller write on this thread.")
    return None


# What the marketplace's feed reports of an order: the transition and how its refusal reads.
_FEED = {"ship": ("report a shipment", "shipped"), "deliver": ("report a delivery", "delivered")}


def order_feed_refusal(
    *, order: Order, user: User | None, event: Literal["ship", "deliver"]
) -> DomainError | None:
    """Shipping and delivery are reported by staff or the marketplace (`None`: the system
    itself, e.g. a sweep or a seed), while the order's state machine allows them."""
    doing, done = _FEED[event]
    if user is not None and not (user.is_staff or user.is_marketplace):
        return NotAllowed(f"Only staff or the marketplace can {doing}.")
    if not can_proceed(getattr(order, event)):
        return InvalidTransition(f"Order {order.number} is {order.status}; it cannot be {done}.")
    return None


# --- API tokens -------------------------------------------------------------------------------

AccountRole = Literal["party", "staff", "marketplace", "inactive"]

# What each kind of account may do through the API (docs/api.md, Authentication). The
# marketplace's integration account never acts as a party, even on an order it is named in, and
# even if it is also flagged staff.
ROLE_SCOPES: Mapping[AccountRole, frozenset[str]] = {
    "party": frozenset({ApiScope.READ, ApiScope.ACT}),
    "staff": frozenset({ApiScope.READ, ApiScope.ACT, ApiScope.DECIDE, ApiScope.MARKETPLACE}),
    "marketplace": frozenset({ApiScope.READ, ApiScope.MARKETPLACE}),
    "inactive": frozenset(),
}


def account_role(*, user: User) -> AccountRole:
    """The account's role for the API, whatever order it looks at."""
    if not user.is_active:
        return "inactive"
    if user.is_marketplace:
        return "marketplace"
    return "staff" if user.is_staff else "party"


def api_scopes(*, user: User, token: ApiToken | None) -> frozenset[str]:
    """What this account may do through the API: its role's scopes, narrowed by the token's when
    the request came with a token object. A session (or a test's `force_authenticate`) has its
    role's full rights."""
    allowed = ROLE_SCOPES[account_role(user=user)]
    if token is None:
        return allowed
    return allowed & frozenset(token.scopes)


def api_scope_refusal(*, user: User, token: ApiToken | None, scope: str) -> DomainError | None:
    """May a request by this account (with this token, if any) use a view of this scope?"""
    if scope in api_scopes(user=user, token=token):
        return None
    if token is not None and scope in ROLE_SCOPES[account_role(user=user)]:
        return NotAllowed(f"This token's scopes do not include '{scope}'.")
    return NotAllowed(f"This account cannot do what the scope '{scope}' covers.")


def api_token_grant_refusal(
    *, user: User, token: ApiToken | None, scopes: Iterable[str]
) -> DomainError | None:
    """May this account (through this token, if any) hold a token with these scopes? Only scopes
    it has itself, so a narrow key can never mint a wider one."""
    missing = sorted(set(scopes) - api_scopes(user=user, token=token))
    if missing:
        through = "this token" if token is not None else "this account"
        return NotAllowed(f"Cannot grant {', '.join(missing)}: {through} does not have it.")
    return None


def api_token_manage_refusal(
    *, user: User, token: ApiToken | None, target: ApiToken
) -> DomainError | None:
    """May this account (through this token, if any) rotate or revoke `target`? Its owner may,
    within the scopes the request itself has (a read-only key cannot take over a wider one);
    staff revoke any token in the staff desk."""
    if target.user_id != user.pk and not (user.is_staff and user.is_active):
        return NotAllowed("Only the token's owner can manage it.")
    return api_token_grant_refusal(
        user=user, token=token, scopes=api_scopes(user=target.user, token=target)
    )


# Stripe refunds a card payment by its PaymentIntent or its Charge (docs/rules.md, Payouts).
STRIPE_REFERENCE_PREFIXES = ("pi_", "ch_")


def payment_reference_problem(*, payment_method: str, payment_reference: str) -> str | None:
    """Why the gateway could never refund this payment, or None; read at ingest.

    With the Stripe gateway a card order (cards and card wallets, which Stripe processes as cards)
    must name a PaymentIntent or a Charge. Only the prefix is checked: ingest never calls Stripe.
    Other payment methods are not Stripe's, so any reference is theirs to keep.
    """
    if settings.PAYMENT_GATEWAY != "stripe" or payment_method != PaymentMethod.CARD:
        return None
    if payment_reference.startswith(STRIPE_REFERENCE_PREFIXES):
        return None
    return "A card payment must be a Stripe PaymentIntent (pi_…) or Charge (ch_…)."
