"""Fixtures of the security suites."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage
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
