"""How recent a session's sign-in is (docs/architecture.md, Accounts and security).

A money decision in the staff desk (deciding a dispute, retrying or cancelling a payout, applying
deadlines that approve refunds) asks for the password again when the session's last sign-in or
password re-entry is older than `REAUTH_MAX_AGE`. The instant is kept in the session: written at
sign-in (a `user_logged_in` receiver in `portal.accounts`) and at re-entry (the desk's re-entry
page, `admin:reauth`). The decision paths live in the domain apps' `admin.py`, below the portal,
so the check and its redirect live here and name the re-entry page by its URL name only.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

SIGNED_IN_AT = "signed_in_at"


def signin_mark(request: HttpRequest, *, now: datetime | None = None) -> None:
    """The session's password was just given (a sign-in or a re-entry)."""
    request.session[SIGNED_IN_AT] = (now or timezone.now()).timestamp()


def signin_is_recent(request: HttpRequest, *, now: datetime) -> bool:
    at = request.session.get(SIGNED_IN_AT)
    if not isinstance(at, int | float):
        return False
    return now.timestamp() - at <= settings.REAUTH_MAX_AGE.total_seconds()


def reauth_refusal(request: HttpRequest) -> HttpResponseRedirect | None:
    """None when the password was given recently enough for a money decision; otherwise the
    redirect to the re-entry page, which sends the staff member back here afterwards."""
    if signin_is_recent(request, now=timezone.now()):
        return None
    # After a POST (an admin action) the page to come back to is the one that was posted to;
    # the action is chosen again there, so nothing is done on the strength of a stale sign-in.
    query = urlencode({"next": request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('admin:reauth')}?{query}")
