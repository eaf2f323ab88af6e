"""Test settings: the real PostgreSQL and Redis when they are reachable (CI requires them)."""

from __future__ import annotations

import os
import socket


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and _reachable("127.0.0.1", 5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/refundportal"
if "REDIS_URL" not in os.environ and _reachable("127.0.0.1", 6379):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from .base import *  # noqa: E402, F403
from .base import DATABASES, INSTALLED_APPS, MIDDLEWARE, REST_FRAMEWORK  # noqa: E402

# Uploads made by tests never land in the project's var/ (tests/conftest.py also isolates each
# test's evidence in its own folder).
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="refundportal-test-media-"))
PRIVATE_STORAGE_ROOT = MEDIA_ROOT / "private"
# Whitenoise looks for collected files at start; tests serve static files from the finders.
STATIC_ROOT = MEDIA_ROOT / "static"
STATIC_ROOT.mkdir()
DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STAFF_ALERT_EMAILS = ["ops@refundportal.test"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests make many requests from one user: the throttle tests set their own low rates.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        "refund_filing": "1000/min",
        "dispute_filing": "1000/min",
        "messages": "1000/min",
        "uploads": "1000/min",
    },
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_refundportal")}
AXES_ENABLED = True
# N+1 detector (nplusone): a lazy load of a related object per row inside a request raises
# (tests/test_nplusone.py shows it is on).
NPLUSONE_RAISE = True
INSTALLED_APPS = [*INSTALLED_APPS, "nplusone.ext.django"]
MIDDLEWARE = ["nplusone.ext.django.NPlusOneMiddleware", *MIDDLEWARE]
