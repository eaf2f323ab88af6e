"""The old plain DRF tokens become hashed API keys that keep working with the same key, and the
plain table is gone (orders/migrations/0004_carry_over_drf_tokens.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import ApiToken
from tests.orders.factories import UserFactory

BEFORE = [("orders", "0002_payouts_move_to_their_app")]
LEGACY_KEYS = {"buyer": "0123456789abcdef0123456789abcdef01234567", "feed": "f" * 40}


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _latest() -> list[tuple[str, str]]:
    # Every app's latest migration, not only `orders`': rolling `orders` back also unapplies
    # what depends on it in other apps, and the database must end as complete as it began.
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _create_legacy_table() -> None:
    """`rest_framework.authtoken`'s table as its migrations left it (the app is no longer
    installed, so there is no model to build it from)."""
    instant = "timestamp with time zone" if connection.vendor == "postgresql" else "datetime"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) NOT NULL PRIMARY KEY, "
            f"created {instant} NOT NULL, "
            "user_id bigint NOT NULL UNIQUE REFERENCES orders_user (id))"
        )


@pytest.mark.django_db(transaction=True)
def test_drf_tokens_keep_working_with_the_same_key_and_no_plain_key_remains() -> None:
    # given a database before API keys, with two plain DRF tokens
    latest = _latest()
    _migrate(BEFORE)
    buyer = UserFactory(email="legacy.buyer@example.com")
    feed = UserFactory(email="legacy.feed@example.com", is_marketplace=True)
    _create_legacy_table()
    created = timezone.now().replace(microsecond=0)
    with connection.cursor() as cursor:
        for user, key in ((buyer, LEGACY_KEYS["buyer"]), (feed, LEGACY_KEYS["feed"])):
            cursor.execute(
                "INSERT INTO authtoken_token (key, user_id, created) VALUES (%s, %s, %s)",
                [key, user.pk, created],
            )

    # when the migrations run
    _migrate(latest)

    # then the plain table is gone and no stored column holds a key
    assert "authtoken_token" not in connection.introspection.table_names()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM orders_apitoken")
        rows = cursor.fetchall()
    assert len(rows) == 2
    assert not any(
        key in str(value) for key in LEGACY_KEYS.values() for row in rows for value in row
    )
    # each key still works, with its account's rights (the feed never acts as a party)
    for key in LEGACY_KEYS.values():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.get("/api/v1/orders/").status_code == 200
    tokens = {t.user_id: t for t in ApiToken.objects.all()}
    assert tokens[buyer.pk].scopes == ["read", "act"]
    assert tokens[feed.pk].scopes == ["read", "marketplace"]
    assert tokens[buyer.pk].created_at == created
    assert tokens[buyer.pk].expires_at > timezone.now()
