"""Who is asking, and the security log (docs/architecture.md, Accounts and security).

`client_address` is the one answer to "which address did this request come from": the lockout,
the throttles and the security log all read it. `X-Forwarded-For` is believed only through the
number of proxies the deployment says it runs (`TRUSTED_PROXY_COUNT`, read at call time): each
trusted proxy appends the address it received the request from, so with N trusted proxies the
client is the N-th address from the right. Anything to the left of that was written by the
client and is ignored; with no trusted proxy the header is ignored entirely.

`security_event` writes one line per security-relevant event (access refused, lockout, token
created or revoked, money decision) to the `refundportal.security` logger, with the event, the
actor and the address as `extra` fields for a structured formatter. Never pass a secret.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest

logger = logging.getLogger("refundportal.security")


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str | None:
    """The client's address: `REMOTE_ADDR`, or the one the trusted proxies saw."""
    remote = _address(request.META.get("REMOTE_ADDR", "") or "")
    trusted = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    if trusted <= 0:
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < trusted:
        # Fewer hops than proxies: the request did not come through all of them, so the header
        # is not the proxies' to believe.
        return remote
    return _address(hops[-trusted]) or remote


def security_event(
    event: str,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log a security event with `extra` fields: `security_event` (the event's name), `actor`
    (a username or None), `address` (the client's), plus whatever `fields` the event carries."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    # An account is named by its USERNAME_FIELD (the email here); a string is taken as given.
    username = actor.get_username() if hasattr(actor, "get_username") else actor
    address = client_address(request) if request is not None else None
    extra = {
        "security_event": event,
        "actor": str(username) if username is not None else None,
        "address": address,
        **{f"event_{name}": value for name, value in fields.items()},
    }
    details = " ".join(f"{name}={value}" for name, value in fields.items())
    logger.log(
        level, "%s actor=%s address=%s %s", event, extra["actor"], address, details, extra=extra
    )
