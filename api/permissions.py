"""DRF permissions of the API.

Role checks only: whether a user may see a given object is the selectors' job (an object the user
may not see is simply not found; docs/architecture.md, Permissions), and whether an action is
theirs is the services'.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from orders.models import ApiScope, ApiToken
from orders.rules import api_scope_refusal

# What a view's writes need when it names nothing else: a party's action.
DEFAULT_WRITE_SCOPE = ApiScope.ACT


def required_scope(request: Request, view: Any) -> str | None:
    """The scope a request needs: `read` for a safe method, else the view's `token_scope`
    (`act` when it names none). A view names `token_scope = None` when what it may do is narrowed
    by its service instead (the token API: a key grants only scopes it has)."""
    if request.method in SAFE_METHODS:
        return ApiScope.READ
    return getattr(view, "token_scope", DEFAULT_WRITE_SCOPE)


class TokenScope(BasePermission):
    """The account's role's scopes, narrowed by the request's token when it has one (docs/api.md,
    Authentication). In DEFAULT_PERMISSION_CLASSES: a view that lists its own permissions lists
    this one too."""

    message = "This token does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if not hasattr(view, (request.method or "").lower()):
            # A method the view does not serve is a 405 (dispatch answers it), not a scope refusal.
            return True
        scope = required_scope(request, view)
        if scope is None:
            return True
        token = request.auth if isinstance(request.auth, ApiToken) else None
        refusal = api_scope_refusal(user=user, token=token, scope=scope)
        if refusal is not None:
            self.message = refusal.message
            return False
        return True


class IsStaffOrMarketplace(BasePermission):
    """The marketplace feed (token) and staff push orders and their shipping events (docs/api.md,
    Orders)."""

    message = "Only staff or the marketplace integration can do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and (user.is_staff or getattr(user, "is_marketplace", False))
        )
