from __future__ import annotations

import pytest
from django.core.files.storage import FileSystemStorage

from refunds.models import Evidence


@pytest.fixture(autouse=True)
def private_storage(tmp_path, monkeypatch, settings):
    """Evidence goes to a temporary private root, never the project's var/ directory.

    The model's storage is built once when models load, so the test swaps it on the field.
    """
    root = tmp_path / "private"
    settings.PRIVATE_STORAGE_ROOT = root
    monkeypatch.setattr(
        Evidence._meta.get_field("file"), "storage", FileSystemStorage(location=root, base_url=None)
    )
    return root
