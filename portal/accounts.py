"""Who may hold a page session, and the security log of signing in (docs/architecture.md,
Accounts and security).

Each "may this session see pages?" question is one function here, read by the page middleware
(`portal.middleware.AccountSessionMiddleware`) and the staff desk's site
(`refundportal.admin_site.StaffDeskSite`). The receivers below are connected once, in
`PortalConfig.ready()`: they only write the session's sign-in instant and log; no business effect
hangs on them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode
from django_otp import DEVICE_ID_SESSION_KEY

from kernel.security import security_event
from kernel.signin import signin_mark

LAST_SEEN = "staff_last_seen"


def page_session_refusal(user: Any) -> str | None:
    """Why this signed-in account may not use the pages at all, or None."""
    if getattr(user, "is_marketplace", False):
        return (
            "This is a marketplace service account: it works through the API with its token "
            "and cannot sign in to the portal's pages."
        )
    return None


def needs_second_factor(user: Any) -> bool:
    """Staff pages and the admin need a session verified with the staff member's TOTP device
    (API calls never do)."""
    return bool(user.is_authenticated and user.is_staff and not second_factor_verified(user))


def second_factor_verified(user: Any) -> bool:
    # `is_verified` is installed on request.user by django-otp's middleware; a user object that
    # did not come through it (just signed in, in this request) has not shown a code.
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified is not None and is_verified())


def second_factor_url(next_url: str) -> str:
    return f"{reverse('second-factor')}?{urlencode({'next': next_url})}"


def staff_idle_expired(request: HttpRequest, *, now: datetime) -> bool:
    """A staff session with no request for `STAFF_IDLE_TIMEOUT` is over."""
    last = request.session.get(LAST_SEEN)
    if not isinstance(last, int | float):
        return False
    return now.timestamp() - last > settings.STAFF_IDLE_TIMEOUT.total_seconds()


def staff_seen(request: HttpRequest, *, now: datetime) -> None:
    request.session[LAST_SEEN] = now.timestamp()
    # The store and the cookie end with the idle timeout too, so an abandoned session is not
    # kept for Django's two weeks.
    request.session.set_expiry(int(settings.STAFF_IDLE_TIMEOUT.total_seconds()))


# --- receivers (connected in PortalConfig.ready) -------------------------------------------------


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    signin_mark(request)
    # A password sign-in starts a new second-factor check, even for the same account in the
    # same browser (Django keeps the session's data when the same user signs in again).
    request.session.pop(DEVICE_ID_SESSION_KEY, None)
    request.session.pop(LAST_SEEN, None)


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only the username is logged; Django has already masked the password in `credentials`,
    # and it is not read at all here.
    username = credentials.get("username") or credentials.get("email")
    security_event(
        "login_failed",
        request=request,
        actor=str(username) if username else None,
        level=logging.WARNING,
    )


def on_locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, **kwargs: Any
) -> None:
    security_event(
        "lockout",
        request=request,
        actor=username,
        level=logging.WARNING,
        failure_limit=settings.AXES_FAILURE_LIMIT,
        cooloff_minutes=int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    )


def connect_receivers() -> None:
    from axes.signals import user_locked_out

    user_logged_in.connect(on_logged_in, dispatch_uid="portal.accounts.logged_in")
    user_login_failed.connect(on_login_failed, dispatch_uid="portal.accounts.login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="portal.accounts.locked_out")
