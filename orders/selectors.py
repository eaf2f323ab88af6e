"""Reads of the orders app; every object a user asks for is fetched through them
(docs/architecture.md, Permissions)."""

from __future__ import annotations

import hmac

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404

from .models import ApiToken, Order, User

# Longer than any key this portal issued (new keys are 47 characters, keys carried over from
# the old plain tokens 40); anything longer is not looked up at all.
MAX_KEY_LENGTH = 128


def order_list_for_user(*, user: User) -> QuerySet[Order]:
    qs = Order.objects.select_related("shop", "shop__owner", "buyer")
    if user.is_staff or user.is_marketplace:
        return qs
    return qs.filter(Q(buyer=user) | Q(shop__owner=user))


def order_get_for_user(*, user: User, number: str) -> Order:
    try:
        return order_list_for_user(user=user).get(number=number)
    except Order.DoesNotExist as exc:
        raise Http404("No such order.") from exc


def api_token_list_for_user(*, user: User) -> QuerySet[ApiToken]:
    """The account's own keys, newest first, revoked and expired ones included (their history)."""
    return ApiToken.objects.filter(user=user).select_related("user")


def api_token_get_for_user(*, user: User, public_id: str) -> ApiToken:
    try:
        return api_token_list_for_user(user=user).get(public_id=public_id)
    except (ApiToken.DoesNotExist, ValidationError) as exc:
        raise Http404("No such token.") from exc


def api_token_for_key(*, key: str) -> ApiToken | None:
    """The token this key is, whatever its state, or None. The prefix narrows the lookup to an
    index hit; the digest decides, compared in constant time."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    digest = ApiToken.digest_of(key)
    for token in ApiToken.objects.filter(prefix=key[: ApiToken.PREFIX_LENGTH]).select_related(
        "user"
    ):
        if hmac.compare_digest(token.digest, digest):
            return token
    return None
