"""`manage.py seed_demo` (docs/architecture.md, Operations): every state, printed logins, safe to
run again, SQLite too."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command

from disputes.models import Dispute, DisputeState
from orders.models import Order, OrderStatus, User
from refunds.models import ClosedReason, Evidence, RefundCase, State

PASSWORD = "demo-pass-2026"


@pytest.fixture(autouse=True)
def private_storage(tmp_path, monkeypatch, settings):
    root = tmp_path / "private"
    settings.PRIVATE_STORAGE_ROOT = root
    monkeypatch.setattr(
        Evidence._meta.get_field("file"), "storage", FileSystemStorage(location=root, base_url=None)
    )
    return root


def _values(qs, field: str) -> set[str]:
    return set(qs.values_list(field, flat=True).distinct())


def test_seed_demo_creates_every_state_and_runs_twice(db, django_capture_on_commit_callbacks):
    # when the demo is seeded (payouts settle when it commits)
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=out)

    # then every order, case, closing and dispute state is there, some disputes overdue
    assert _values(Order.objects, "status") == set(OrderStatus.values)
    assert _values(RefundCase.objects, "state") == set(State.values)
    assert _values(RefundCase.objects.filter(state=State.CLOSED), "closed_reason") == set(
        ClosedReason.values
    )
    assert _values(Dispute.objects, "state") == set(DisputeState.values)
    assert Dispute.objects.filter(due_flagged_at__isnull=False).exists()
    assert Dispute.objects.filter(
        target_flagged_at__isnull=False,
        due_flagged_at__isnull=True,
    ).exists()
    assert Evidence.objects.filter(for_dispute=True).count() == 2
    # and the logins work and are printed
    text = out.getvalue()
    for email in ("buyer@demo.test", "seller@demo.test", "staff@demo.test"):
        assert email in text
        assert User.objects.get(email=email).check_password(PASSWORD)
    assert PASSWORD in text and settings.SITE_URL in text
    assert User.objects.get(email="staff@demo.test").is_staff
    # and the staff's second factor: a confirmed TOTP device whose secret is printed
    from base64 import b32encode

    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user__email="staff@demo.test", confirmed=True)
    assert b32encode(device.bin_key).decode() in text

    # when it runs again, then nothing is added and the logins are printed again
    counts = (Order.objects.count(), RefundCase.objects.count(), Dispute.objects.count())
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert (Order.objects.count(), RefundCase.objects.count(), Dispute.objects.count()) == counts
    assert "already there" in again.getvalue() and "staff@demo.test" in again.getvalue()
    assert b32encode(device.bin_key).decode() in again.getvalue()
    assert TOTPDevice.objects.filter(user__email="staff@demo.test").count() == 1


@pytest.mark.slow
def test_seed_demo_runs_on_sqlite_as_make_run_does(tmp_path):
    # given the settings `make run` uses: SQLite, no Redis, no worker
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "refundportal.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "REDIS_URL": "",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]

    def run(*args: str) -> str:
        result = subprocess.run(
            [*manage, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    # when it migrates and seeds twice
    run("migrate", "--noinput", "-v", "0")
    first = run("seed_demo")
    second = run("seed_demo")

    # then the data is made once and the logins are printed both times
    assert "Demo data created" in first and "10 disputes" in first
    assert "already there" in second
    assert "staff@demo.test" in second and PASSWORD in second
