"""DRF permissions of the orders API.

Role checks only: whether a user may see a given order is the selectors' job (an order the user
may not see is simply not found; docs/architecture.md, Permissions), and whether an action is theirs
is the services'.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


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
