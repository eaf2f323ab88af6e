"""Settings shared by every environment; every value comes from the environment.

A malformed value stops the process at start with a message naming the variable: a portal that
enforces money deadlines must not start on a guessed time zone or a half-parsed database URL.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _env_or_fail(name: str, cast, default):  # type: ignore[no-untyped-def]
    try:
        return env(name, cast=cast, default=default)
    except (ValueError, TypeError) as exc:  # pragma: no cover - exercised by tests/test_settings.py
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from exc


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(name: str, default: bool) -> bool:
    """Strict: django-environ reads any unknown word ("maybe", "ture") as False."""
    raw = env.ENVIRON.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no")


DEBUG = _env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY", default="insecure-development-key-change-me")
ALLOWED_HOSTS = _env_or_fail(
    "ALLOWED_HOSTS", list, ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = _env_or_fail("CSRF_TRUSTED_ORIGINS", list, [])

_database_url = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
# django-environ passes an unknown scheme through as the engine's name, and Django only
# fails later with a message that does not name the variable.
if _database_url.partition("://")[0] not in environ.Env.DB_SCHEMES:
    raise ImproperlyConfigured(
        f"DATABASE_URL={_database_url.partition('://')[0]}://… has an unknown scheme; "
        "use e.g. postgres://user:password@host:5432/name or sqlite:////path/to/db.sqlite3"
    )
try:
    DATABASES = {"default": env.db_url_config(_database_url)}
except (ValueError, environ.ImproperlyConfigured, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # WAL lets the web process, the worker and beat share the embedded database.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
# PostgreSQL: parameters bound by the server, and a statement run 5 times on a connection
# prepared, so the pages' queries are planned once per connection instead of on every request
# (half the database CPU of a page, bench/README.md). A pooler in transaction mode that cannot
# keep prepared statements (PgBouncer before 1.21) needs DATABASE_PREPARED_STATEMENTS=0.
_prepared_statements = _env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _prepared_statements:
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=5
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
# With persistent connections (?conn_max_age=60), a connection the server dropped is replaced
# at the start of the next request instead of failing it.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

MARKETPLACE_TIME_ZONE = env("MARKETPLACE_TIME_ZONE", default="Asia/Shanghai")
try:
    zoneinfo.ZoneInfo(MARKETPLACE_TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfigured(
        f"MARKETPLACE_TIME_ZONE={MARKETPLACE_TIME_ZONE!r} is not an IANA time zone"
    ) from exc

MARKETPLACE_HOLIDAY_COUNTRY = env("MARKETPLACE_HOLIDAY_COUNTRY", default="CN")
try:
    import holidays as _holidays

    _holidays.country_holidays(MARKETPLACE_HOLIDAY_COUNTRY)
except (NotImplementedError, KeyError) as exc:
    raise ImproperlyConfigured(
        f"MARKETPLACE_HOLIDAY_COUNTRY={MARKETPLACE_HOLIDAY_COUNTRY!r} is not a country "
        "the holidays library knows"
    ) from exc

PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="fake")
PAYMENT_GATEWAYS = {
    "fake": "payouts.gateway.FakeGateway",
    "stripe": "payouts.gateway.StripeGateway",
}
if PAYMENT_GATEWAY not in PAYMENT_GATEWAYS:
    raise ImproperlyConfigured(
        f"PAYMENT_GATEWAY={PAYMENT_GATEWAY!r} is unknown; choose one of {sorted(PAYMENT_GATEWAYS)}"
    )
# Stripe (README, Connecting Stripe). Read when a payout is sent, so a test can point them at a
# local server; production refuses to start with a missing or malformed key.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
if not re.fullmatch(r"https?://[^\s/?#]+", STRIPE_API_BASE):
    raise ImproperlyConfigured(
        f"STRIPE_API_BASE={STRIPE_API_BASE!r} is not an address like https://api.stripe.com"
    )
# The fake gateway's default answer: "succeed", "fail", "pending" or "timeout".
FAKE_GATEWAY_MODE = env("FAKE_GATEWAY_MODE", default="succeed")
if FAKE_GATEWAY_MODE not in {"succeed", "fail", "pending", "timeout"}:
    raise ImproperlyConfigured(f"FAKE_GATEWAY_MODE={FAKE_GATEWAY_MODE!r} is unknown")

# Overrides of the windows of docs/rules.md (Windows), by name, e.g. {"seller_response":
# timedelta(hours=72)}. The defaults live once, in kernel/windows.py (DEFAULT_WINDOWS), the only
# reader, which refuses a value of the wrong kind when the window is read.
REFUND_WINDOWS: dict[str, timedelta | int] = {}

EVIDENCE_MAX_BYTES = 10 * 1024 * 1024
EVIDENCE_MAX_FILES = 10
EVIDENCE_MAX_PIXELS = 40_000_000
# Evidence lives outside the static root and is only served through a permission-checked view.
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
PRIVATE_STORAGE_ROOT = MEDIA_ROOT / "private"
SWEEP_BATCH_SIZE = _env_or_fail("SWEEP_BATCH_SIZE", int, 5000)
SITE_URL = env("SITE_URL", default="http://localhost:8000")

INSTALLED_APPS = [
    # The staff desk's site (refundportal/admin_site.py): staff with a second factor only.
    "refundportal.apps.StaffDeskAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_fsm",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "refundportal",
    "orders",
    "payouts",
    "refunds",
    "disputes",
    "notifications",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before WhiteNoise and the hostile-request refusals, so static files and refusals carry the
    # policies too.
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "refundportal.middleware.HostileRequestMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "portal.middleware.AccountSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ViewerTimeZoneMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last: it runs an API POST with an Idempotency-Key inside one transaction with its stored
    # answer, after every other check (docs/architecture.md, Idempotent writes).
    "api.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "refundportal.urls"
WSGI_APPLICATION = "refundportal.wsgi.application"
AUTH_USER_MODEL = "orders.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.header",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# The largest API body, checked before it is read (refundportal/middleware.py): JSON, unless the
# view sets its own `max_body_bytes`; a multipart upload carries one evidence file and its fields.
API_MAX_BODY_BYTES = _env_or_fail("API_MAX_BODY_BYTES", int, 2 * 1024 * 1024)
API_MAX_UPLOAD_BODY_BYTES = _env_or_fail(
    "API_MAX_UPLOAD_BODY_BYTES", int, EVIDENCE_MAX_BYTES + 1024 * 1024
)
# The batch endpoints' body (500 orders or events; docs/api.md, Batch ingest).
API_MAX_BATCH_BODY_BYTES = _env_or_fail("API_MAX_BATCH_BODY_BYTES", int, 16 * 1024 * 1024)

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = _env_or_fail("EMAIL_PORT", int, 25)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="RefundPortal <no-reply@refundportal.test>")
STAFF_ALERT_EMAILS = _env_or_fail("STAFF_ALERT_EMAILS", list, [])
ANYMAIL = env.dict("ANYMAIL", default={})

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "api.authentication.ApiTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.permissions.TokenScope",
    ],
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "api.paging.ApiPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_METADATA_CLASS": "api.toolkit.EndpointMetadata",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_RATES": {
        "refund_filing": env("THROTTLE_REFUND_FILING", default="20/hour"),
        "dispute_filing": env("THROTTLE_DISPUTE_FILING", default="20/hour"),
        "messages": env("THROTTLE_MESSAGES", default="120/hour"),
        "uploads": env("THROTTLE_UPLOADS", default="60/hour"),
    },
}
# API keys (docs/api.md, Authentication): how long a new key lives when its issuer names no
# lifetime, and the longest lifetime anyone may choose.
API_TOKEN_DAYS = _env_or_fail("API_TOKEN_DAYS", int, 90)
API_TOKEN_MAX_DAYS = _env_or_fail("API_TOKEN_MAX_DAYS", int, 365)
if not 1 <= API_TOKEN_DAYS <= API_TOKEN_MAX_DAYS:
    raise ImproperlyConfigured(
        f"API_TOKEN_DAYS={API_TOKEN_DAYS} must be between 1 and API_TOKEN_MAX_DAYS "
        f"({API_TOKEN_MAX_DAYS})"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "RefundPortal API",
    "DESCRIPTION": "Refunds, returns and disputes for marketplaces (docs/api.md).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, served as static files: no CDN, and the
    # page's own script comes from a URL (SpectacularSwaggerSplitView), so the CSP holds.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set shared by several serializers, so the schema generates without
    # warnings and `check --deploy --fail-level WARNING` passes (tests/security/test_deploy.py).
    "ENUM_NAME_OVERRIDES": {
        "RefundStateEnum": "refunds.models.State",
        "DisputeStateEnum": "disputes.models.DisputeState",
        "PartyEnum": "disputes.models.Party",
        "PartyValueEnum": ["buyer", "seller"],
        "RoleEnum": ["buyer", "seller", "staff"],
    },
}

# Content-Security-Policy on every response (docs/architecture.md, Browser policies): scripts,
# styles, images and fonts come only from the portal's own origin, never inline; nothing may
# frame a page, and forms post only to the portal. Templates carry no `style="…"`, `<style>`,
# inline `<script>` or `on…=` attribute (tests/security/test_browser_policies.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the icons Swagger UI's stylesheet embeds (the API docs page).
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}
# Browser features the portal never uses are switched off for it and anything it embeds.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "browsing-topics",
        "camera",
        "display-capture",
        "encrypted-media",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }

# Celery: Redis when REDIS_URL is set, else the embedded filesystem broker so the portal runs
# with no server at all (make run).
CELERY_BROKER_DIR = BASE_DIR / "var" / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        # Longer than any countdown (≤ 5 min) and any task time limit, so a task a worker holds
        # is not handed to a second worker while the first still runs it. The environment may
        # shorten it only for the killed-worker tests (tests/reliability/test_broker.py).
        "visibility_timeout": _env_or_fail("CELERY_VISIBILITY_TIMEOUT", int, 3600),
    }
else:
    for _sub in ("out", "processed", "control"):
        (CELERY_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup otherwise closes the database connection around every task, a new
# PostgreSQL connection per payout or notice (measured: about a third of a notice's cost).
# Django still drops unusable or obsolete connections between tasks.
CELERY_DB_REUSE_MAX = _env_or_fail("CELERY_DB_REUSE_MAX", int, 1000)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A payout's task waits on the gateway's answer (0.3–1 s at Stripe) and does little else, so it
# has a queue of its own, consumed by a worker with the threads pool and many threads: a thread
# releases the GIL while it waits, so one process keeps dozens of refunds in flight. Everything
# else (email rendering, sweeps) stays on the default queue and its prefork worker, where CPU
# work gets whole processes (docs/architecture.md, Tasks and beat).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"payouts.tasks.payout_send": {"queue": "payouts"}}
# Publishing must not hang a web request when the broker is down: the transition has committed,
# and the periodic re-dispatch picks up whatever was not queued.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "enforce-deadlines": {"task": "refundportal.tasks.enforce_deadlines", "schedule": 60.0},
    "redispatch-notifications": {
        "task": "notifications.tasks.notifications_redispatch",
        "schedule": 60.0,
    },
    "redispatch-payouts": {"task": "payouts.tasks.payouts_redispatch", "schedule": 120.0},
    "expire-idempotency-keys": {"task": "orders.tasks.idempotency_keys_expire", "schedule": 3600.0},
    "clean-refund-drafts": {"task": "refunds.tasks.refund_drafts_cleanup", "schedule": 3600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# How many reverse proxies in front of the app append to X-Forwarded-For; the client address is
# read through exactly that many (kernel/security.py). 0: the header is ignored.
TRUSTED_PROXY_COUNT = _env_or_fail("TRUSTED_PROXY_COUNT", int, 0)

AXES_FAILURE_LIMIT = _env_or_fail("AXES_FAILURE_LIMIT", int, 5)
AXES_COOLOFF_TIME = timedelta(minutes=15)
# One lock per username AND address (a combination, not two separate locks): wrong passwords for
# one account from one address never lock another account, nor the same account elsewhere; with
# the proxy's address alone, five guesses at any username would lock everybody out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "kernel.security.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# Accounts (docs/architecture.md, Accounts and security). Staff sign in to pages and the admin
# with a TOTP second factor; their session ends after STAFF_IDLE_TIMEOUT without a request, and a
# money decision in the admin asks for the password again once the last sign-in or re-entry is
# older than REAUTH_MAX_AGE. Other accounts keep Django's session policy.
STAFF_IDLE_TIMEOUT = timedelta(minutes=_env_or_fail("STAFF_IDLE_TIMEOUT_MINUTES", int, 30))
REAUTH_MAX_AGE = timedelta(minutes=_env_or_fail("REAUTH_MAX_AGE_MINUTES", int, 15))
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="RefundPortal")
