"""What the header needs on every page, computed only when a template shows it."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connections, router
from django.http import HttpRequest

from .models import Shop


def _owns_shop(user_id: Any) -> bool:
    """`user.shops.exists()` as plain SQL: asked on every page, and the ORM's query building
    cost several times the (indexed) query itself."""
    meta = Shop._meta
    owner = meta.get_field("owner").column
    with connections[router.db_for_read(Shop)].cursor() as cursor:
        cursor.execute(
            f'SELECT 1 FROM "{meta.db_table}" WHERE "{owner}" = %s LIMIT 1',  # noqa: S608
            [user_id],
        )
        return cursor.fetchone() is not None


def shop_owner(request: HttpRequest) -> dict[str, Any]:
    """Whether to link the seller dashboard: one EXISTS, asked once, when the header renders."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"owns_shop": False}

    @cache
    def owns_shop() -> bool:
        return _owns_shop(user.pk)

    return {"owns_shop": owns_shop}
