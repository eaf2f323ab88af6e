"""Production: differs from base only by what the environment says, and refuses unsafe values."""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    CELERY_BROKER_TRANSPORT_OPTIONS,
    DEBUG,
    PAYMENT_GATEWAY,
    SECRET_KEY,
    STRIPE_API_BASE,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
    _env_bool,
    env,
)

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")
if not SECRET_KEY or SECRET_KEY.startswith("insecure-") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a long random value in production")
if PAYMENT_GATEWAY == "fake" and not _env_bool("ALLOW_FAKE_GATEWAY", False):
    raise ImproperlyConfigured(
        "PAYMENT_GATEWAY=fake refunds nobody: configure a real gateway in production "
        "(ALLOW_FAKE_GATEWAY=1 only for a staging or benchmark deployment)"
    )
if PAYMENT_GATEWAY == "stripe":
    # The prefix says what a key is: a secret or restricted key (live or test mode) for the API,
    # a signing secret for webhooks. A publishable key (pk_) or a swapped pair fails here, at
    # start, not on the first refund. The message names the variable, never the value.
    if not re.fullmatch(r"(sk|rk)_(live|test)_[A-Za-z0-9]{16,}", STRIPE_SECRET_KEY):
        raise ImproperlyConfigured(
            "STRIPE_SECRET_KEY must be a Stripe secret key (sk_live_…, sk_test_…) or restricted "
            "key (rk_live_…, rk_test_…) when PAYMENT_GATEWAY=stripe"
        )
    if not re.fullmatch(r"whsec_[A-Za-z0-9+/=]{16,}", STRIPE_WEBHOOK_SECRET):
        raise ImproperlyConfigured(
            "STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_…) when "
            "PAYMENT_GATEWAY=stripe"
        )
    if not STRIPE_API_BASE.startswith("https://"):
        raise ImproperlyConfigured("STRIPE_API_BASE must be an https:// address in production")
# A Redis message a worker holds longer than this is handed to a second worker: it must outlast
# the longest task (10 min) plus the longest countdown (5 min). Only the broker tests shorten it.
if CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600) <= 15 * 60:
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must exceed 900 s (longest task + longest countdown)"
    )

# The proxy in front terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
