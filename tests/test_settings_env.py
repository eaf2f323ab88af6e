"""Settings come from the environment and refuse malformed or unsafe values (docs/architecture.md,
Operations).

Each case starts a fresh interpreter, because settings are read once at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
# Variables that would leak the developer's or CI's environment into a case.
CONTROLLED = (
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "PAYMENT_GATEWAY",
    "ALLOW_FAKE_GATEWAY",
    "MARKETPLACE_TIME_ZONE",
    "MARKETPLACE_HOLIDAY_COUNTRY",
    "FAKE_GATEWAY_MODE",
    "DATABASE_URL",
    "SECURE_SSL_REDIRECT",
    "SWEEP_BATCH_SIZE",
    "DATABASE_PREPARED_STATEMENTS",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
)
LONG_SECRET = "k" * 64


def start(settings_module: str, code: str = SETUP, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    environ.update(DJANGO_SETTINGS_MODULE=settings_module, DATABASE_URL="sqlite:///:memory:")
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_base_settings_start_with_a_clean_environment():
    result = start("refundportal.settings.base")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MARKETPLACE_TIME_ZONE", "Mars/Base"),
        ("DATABASE_URL", "nonsense://"),
        ("MARKETPLACE_HOLIDAY_COUNTRY", "XX"),
        ("PAYMENT_GATEWAY", "bogus"),
        ("DEBUG", "maybe"),
        ("FAKE_GATEWAY_MODE", "sometimes"),
        ("SWEEP_BATCH_SIZE", "lots"),
        ("STRIPE_API_BASE", "api.stripe.com"),
    ],
)
def test_a_malformed_value_stops_the_start_naming_the_variable(name, value):
    # when the process starts with one malformed variable
    result = start("refundportal.settings.base", **{name: value})

    # then it stops, and the error says which variable is wrong
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "0", "false", "no", "off"])
def test_debug_accepts_the_usual_spellings(value):
    result = start("refundportal.settings.base", DEBUG=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(value in {"1", "true", "yes", "on"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "1", "SECRET_KEY": LONG_SECRET, "ALLOW_FAKE_GATEWAY": "1"}, "DEBUG"),
        ({"ALLOW_FAKE_GATEWAY": "1"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short", "ALLOW_FAKE_GATEWAY": "1"}, "SECRET_KEY"),
        ({"SECRET_KEY": LONG_SECRET}, "PAYMENT_GATEWAY=fake"),
        ({"SECRET_KEY": LONG_SECRET, "ALLOW_FAKE_GATEWAY": "perhaps"}, "ALLOW_FAKE_GATEWAY"),
    ],
    ids=["debug", "default-secret", "short-secret", "fake-gateway", "malformed-allow"],
)
def test_production_refuses_unsafe_settings(env, message):
    result = start("refundportal.settings.production", **env)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]


def test_production_starts_when_the_environment_is_safe():
    # given a real secret, DEBUG off, and the fake gateway explicitly allowed (staging)
    result = start(
        "refundportal.settings.production", SECRET_KEY=LONG_SECRET, ALLOW_FAKE_GATEWAY="1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


# Shaped like Stripe's keys; not real ones.
STRIPE_KEYS = {
    "PAYMENT_GATEWAY": "stripe",
    "STRIPE_SECRET_KEY": "sk_test_" + "a1B2" * 6,
    "STRIPE_WEBHOOK_SECRET": "whsec_" + "Zx9+" * 8,
}


@pytest.mark.parametrize(
    "secret_key",
    ["sk_live_" + "a1B2" * 6, "sk_test_" + "a1B2" * 6, "rk_live_" + "a1B2" * 6],
    ids=["live", "test-mode", "restricted"],
)
def test_production_starts_with_stripe_and_without_the_fake(secret_key):
    # given Stripe's keys and no ALLOW_FAKE_GATEWAY
    result = start(
        "refundportal.settings.production",
        SECRET_KEY=LONG_SECRET,
        **{**STRIPE_KEYS, "STRIPE_SECRET_KEY": secret_key},
    )

    # then production starts
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_SECRET_KEY", ""),
        ("STRIPE_SECRET_KEY", "pk_live_" + "a1B2" * 6),  # the publishable key
        ("STRIPE_SECRET_KEY", "whsec_" + "a1B2" * 6),  # the keys swapped
        ("STRIPE_SECRET_KEY", "sk_live_"),
        ("STRIPE_WEBHOOK_SECRET", ""),
        ("STRIPE_WEBHOOK_SECRET", "sk_test_" + "a1B2" * 6),
        ("STRIPE_API_BASE", "http://api.stripe.com"),
    ],
    ids=[
        "no-secret-key",
        "publishable-key",
        "swapped",
        "bare-prefix",
        "no-webhook-secret",
        "webhook-secret-is-an-api-key",
        "plain-http",
    ],
)
def test_production_with_stripe_refuses_a_missing_or_malformed_key(name, value):
    # when production starts with Stripe and one key missing or malformed
    result = start(
        "refundportal.settings.production",
        SECRET_KEY=LONG_SECRET,
        **{**STRIPE_KEYS, name: value},
    )

    # then it stops, naming the variable and not echoing the value
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last
    assert name in last
    if len(value) > 10:
        assert value not in result.stderr


def test_the_fake_stays_the_default_gateway_and_stripe_reads_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.PAYMENT_GATEWAY, settings.STRIPE_API_BASE)"
    )
    assert start("refundportal.settings.base", code).stdout.split() == [
        "fake",
        "https://api.stripe.com",
    ]
    result = start(
        "refundportal.settings.base", code, STRIPE_API_BASE="http://127.0.0.1:9", **STRIPE_KEYS
    )
    assert result.stdout.split() == ["stripe", "http://127.0.0.1:9"]


def database_options(**env: str) -> str:
    """The default database's OPTIONS as a fresh interpreter builds them from `env`."""
    result = start(
        "refundportal.settings.base",
        "from refundportal.settings import base; "
        "print(sorted(base.DATABASES['default'].get('OPTIONS', {}).items()))",
        **env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


POSTGRES_URL = "postgres://app@db.invalid:5432/refundportal"


def test_postgresql_prepares_repeated_statements_unless_turned_off():
    # given a PostgreSQL database URL, when nothing else is said
    default = database_options(DATABASE_URL=POSTGRES_URL)
    # then parameters are bound by the server and a statement run 5 times is prepared
    assert "('prepare_threshold', 5)" in default
    assert "('server_side_binding', True)" in default

    # when a transaction-mode pooler needs them off
    off = database_options(DATABASE_URL=POSTGRES_URL, DATABASE_PREPARED_STATEMENTS="0")
    # then neither option is set
    assert "prepare_threshold" not in off
    assert "server_side_binding" not in off


def test_sqlite_has_no_prepared_statement_options():
    options = database_options(DATABASE_URL="sqlite:///:memory:")
    assert "prepare_threshold" not in options
    assert "server_side_binding" not in options


def test_a_malformed_prepared_statements_flag_stops_the_start():
    result = start(
        "refundportal.settings.base",
        DATABASE_URL=POSTGRES_URL,
        DATABASE_PREPARED_STATEMENTS="sometimes",
    )
    assert result.returncode != 0
    assert "DATABASE_PREPARED_STATEMENTS='sometimes' is not a boolean" in result.stderr


@pytest.mark.django_db
def test_the_suite_itself_runs_on_server_bound_prepared_statements():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are a PostgreSQL setting")
    connection.ensure_connection()
    # every test on PostgreSQL exercises the production database options
    assert connection.connection.prepare_threshold == 5
    with connection.cursor() as cursor:
        assert type(cursor.cursor).__name__ == "ServerBindingCursor"
