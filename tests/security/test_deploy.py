"""Production settings pass Django's deployment checks, and the code has no high-severity finding.

Both run as subprocesses, like an operator would run them: `manage.py check --deploy` with the
production settings module and a production-shaped environment, and `bandit -lll`. This is the
only place they run (`scripts/test.sh` leaves them to pytest).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "refundportal.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "portal.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://portal.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        # The only gateway built in is the fake one; production refuses it unless told.
        "ALLOW_FAKE_GATEWAY": "1",
        **extra,
    }


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=production_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_production_settings_pass_check_deploy_at_warning_level(tmp_path):
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"DEBUG": "1"}, "DEBUG must be off"),
        ({"SECRET_KEY": "insecure-development-key-change-me"}, "SECRET_KEY"),
        ({"ALLOW_FAKE_GATEWAY": "0"}, "PAYMENT_GATEWAY=fake"),
        (
            {"REDIS_URL": "redis://127.0.0.1:6399/0", "CELERY_VISIBILITY_TIMEOUT": "5"},
            "CELERY_VISIBILITY_TIMEOUT",
        ),
    ],
    ids=["debug", "default-secret", "fake-gateway", "short-visibility-timeout"],
)
def test_production_settings_refuse_unsafe_values(tmp_path, env, complaint):
    done = manage(tmp_path, "check", **env)
    assert done.returncode != 0
    assert complaint in done.stderr


def test_production_trusts_the_proxy_for_https(tmp_path):
    # A plain-HTTP request is redirected; one the proxy marks as HTTPS is served with HSTS.
    # Production serves hashed static names from collectstatic's manifest, as the image builds it;
    # collect into this test's own folder so a fresh clone behaves like a deployment.
    static_root = str(tmp_path / "static")
    collected = manage(tmp_path, "collectstatic", "--noinput", STATIC_ROOT=static_root)
    assert collected.returncode == 0, collected.stderr
    code = (
        "from django.test import Client; c = Client(); "
        "r1 = c.get('/accounts/login/', HTTP_HOST='portal.example.com'); "
        "r2 = c.get('/accounts/login/', HTTP_HOST='portal.example.com', "
        "HTTP_X_FORWARDED_PROTO='https'); "
        "print('RESULT', r1.status_code, r1.get('Location'), r2.status_code, "
        "'max-age' in r2.get('Strict-Transport-Security', ''))"
    )
    done = manage(tmp_path, "shell", "-c", code, STATIC_ROOT=static_root)
    assert done.returncode == 0, done.stderr
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result.split()[1:] == [
        "301",
        "https://portal.example.com/accounts/login/",
        "200",
        "True",
    ]


def application_packages() -> list[str]:
    """Every Python package of the application at the top of the repository: an app added
    later is scanned without anyone remembering to list it."""
    return sorted(
        path.name
        for path in BASE_DIR.iterdir()
        if (path / "__init__.py").is_file() and path.name not in {"tests", "bench"}
    )


def test_bandit_finds_nothing_of_high_severity():
    bandit = shutil.which("bandit", path=str(Path(sys.executable).parent)) or shutil.which("bandit")
    assert bandit, "bandit is a dev dependency (pyproject.toml)"
    packages = application_packages()
    assert {"orders", "refunds", "disputes", "notifications", "refundportal"} <= set(packages)
    done = subprocess.run(
        [
            bandit,
            "-r",
            *packages,
            "-lll",
            "-q",
            "-f",
            "txt",
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No issues identified" in done.stdout or not done.stdout.strip(), done.stdout
