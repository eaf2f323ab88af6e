"""Fixtures of the security suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from refunds.models import Evidence


@pytest.fixture(autouse=True)
def private_storage(tmp_path, monkeypatch, settings):
    """Evidence goes to a temporary private root, never the project's var/ directory."""
    root = tmp_path / "private"
    settings.PRIVATE_STORAGE_ROOT = root
    monkeypatch.setattr(
        Evidence._meta.get_field("file"), "storage", FileSystemStorage(location=root, base_url=None)
    )
    return root


@pytest.fixture
def throttle_rates(settings, monkeypatch) -> Callable[..., None]:
    """Set the API's throttle rates for this test, through the settings, on a clean cache.

    DRF reads `DEFAULT_THROTTLE_RATES` into a class attribute when it is imported, so the
    reloaded setting is handed to the throttles as well.
    """

    def set_rates(**rates: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **rates,
            },
        }
        monkeypatch.setattr(
            SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES
        )
        cache.clear()

    yield set_rates
    cache.clear()


@contextmanager
def connections_kept() -> Iterator[None]:
    """The WSGI handler closes the connection around each request (CONN_MAX_AGE=0); inside a
    test that would drop the test's transaction, so do what Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    with connections_kept():
        yield


@pytest.fixture(scope="session")
def api_schema() -> Any:
    """The OpenAPI schema as `/api/schema/` serves it, loaded by schemathesis against the WSGI
    application (tests/security/test_schema_fuzz.py, test_schema_contract.py)."""
    import schemathesis

    from refundportal.wsgi import application

    with connections_kept():
        return schemathesis.openapi.from_wsgi("/api/schema/", application)
