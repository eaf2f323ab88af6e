"""Per-user limits for the portal's forms, sharing the API's scopes and budgets.

A buyer who is held back on the API must not get round it through the web form: both count
against the same cache key (DRF's "throttle_<scope>_<user>"), with the rates of
`REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`.

A client without an account is told apart by `kernel.security.client_address` (the address the
trusted proxies saw), never by DRF's own `get_ident`, which reads `X-Forwarded-For` by its own
`NUM_PROXIES` setting and would let a forged header pick a fresh budget.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from kernel.security import client_address


class ClientAddressIdent:
    def get_ident(self, request: Any) -> str:
        return client_address(request) or "unknown"


class PostRateThrottle(ClientAddressIdent, ScopedRateThrottle):
    """An API view's `throttle_scope`, counted on POST only: writing is limited, reading (the
    list or thread the same endpoint serves) is not."""

    def allow_request(self, request: Any, view: Any) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class PageThrottle(ClientAddressIdent, SimpleRateThrottle):
    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # pages behind login only; anonymous posts never reach a service
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


def throttle_post(
    scope: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse a POST past the user's budget for `scope` with a 429 page saying when to retry."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                throttle = PageThrottle(scope)
                # The throttle reads only request.user and the cache; no DRF Request is needed.
                if not throttle.allow_request(request, None):  # type: ignore[arg-type]
                    wait = throttle.wait()
                    response = render(
                        request,
                        "429.html",
                        {"retry_after": int(wait) + 1 if wait is not None else None},
                        status=429,
                    )
                    if wait is not None:
                        response["Retry-After"] = str(int(wait) + 1)
                    return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
