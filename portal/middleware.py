"""Page middleware: the viewer's time zone, and who may hold a page session."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from api.errors import is_api_request
from kernel.security import security_event

from .accounts import (
    needs_second_factor,
    page_session_refusal,
    second_factor_url,
    staff_idle_expired,
    staff_seen,
)


class ViewerTimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        name = getattr(user, "time_zone", None) or settings.MARKETPLACE_TIME_ZONE
        try:
            timezone.activate(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(zoneinfo.ZoneInfo(settings.MARKETPLACE_TIME_ZONE))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class AccountSessionMiddleware:
    """Who may hold a page session (docs/architecture.md, Accounts and security).

    Runs after authentication and django-otp's middleware, for every request with a session:
    - a staff session with no request for `STAFF_IDLE_TIMEOUT` is signed out (API calls made
      with that session included: it is the same session);
    - pages and the admin (not the API) refuse a marketplace service account's session with a
      403, and send staff whose session has not shown a second factor to that page.
    The sign-in, sign-out and second-factor pages stay open, so such a session can end or
    finish signing in.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return self.get_response(request)
        is_api = is_api_request(request)
        if user.is_staff:
            now = timezone.now()
            if staff_idle_expired(request, now=now):
                security_event("session_expired", request=request, reason="staff_idle")
                logout(request)
                if is_api:
                    return self.get_response(request)
                return redirect_to_login(request.get_full_path())
            staff_seen(request, now=now)
        if is_api or request.path_info in _open_paths():
            return self.get_response(request)
        refusal = page_session_refusal(user)
        if refusal:
            raise PermissionDenied(refusal)
        if needs_second_factor(user):
            return HttpResponseRedirect(second_factor_url(request.get_full_path()))
        return self.get_response(request)


def _open_paths() -> set[str]:
    return {
        reverse("login"),
        reverse("logout"),
        reverse("second-factor"),
        reverse("admin:logout"),
    }
