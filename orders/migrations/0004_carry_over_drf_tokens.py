"""The old plain DRF tokens (table `authtoken_token`) become hashed API keys that keep working
with the same key; then the plain table is dropped, so no key stays readable in the database
(docs/api.md, Authentication).

`rest_framework.authtoken` is no longer installed, so its table is read with SQL, when it exists
(a new database never had it). One way only: the keys cannot be written back in plain.
"""

from datetime import UTC, datetime, timedelta
import hashlib

from django.conf import settings
from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"
PREFIX_LENGTH = 12  # ApiToken.PREFIX_LENGTH when this was written


def _role_scopes(user):
    """orders.rules.ROLE_SCOPES when this was written: a carried-over key keeps exactly what it
    could do before (the account's full rights), no more."""
    if user.is_marketplace:
        return ["read", "marketplace"]
    if user.is_staff:
        return ["read", "act", "decide", "marketplace"]
    return ["read", "act"]


def _instant(value, default):
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        return default
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def carry_over(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("orders", "ApiToken")
    User = apps.get_model("orders", "User")
    q = schema_editor.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {q('key')}, {q('user_id')}, {q('created')} FROM {q(LEGACY_TABLE)}")
        rows = cursor.fetchall()
    now = timezone.now()
    # A key that never expired before gets the default lifetime from today.
    expires_at = now + timedelta(days=settings.API_TOKEN_DAYS)
    users = User.objects.in_bulk({user_id for _, user_id, _ in rows})
    ApiToken.objects.bulk_create(
        ApiToken(
            user_id=user_id,
            name="carried over",
            prefix=key[:PREFIX_LENGTH],
            digest=hashlib.sha256(key.encode()).hexdigest(),
            scopes=_role_scopes(users[user_id]),
            created_at=_instant(created, now),
            expires_at=expires_at,
        )
        for key, user_id, created in rows
    )
    schema_editor.execute(f"DROP TABLE {q(LEGACY_TABLE)}")
    # The app's migration records go with its table, so installing it again starts clean.
    schema_editor.execute(
        f"DELETE FROM {q('django_migrations')} WHERE {q('app')} = %s", ["authtoken"]
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0003_api_tokens")]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
