"""Moving `Payout` and `GatewayRefund` from `orders` into the `payouts` app keeps every row.

The fixture was dumped from a `seed_demo` database at the last migration before the move. The
test rolls the schema back to that state, loads the rows through the historical models, migrates
forward to today's layout and compares what the current models read with what was loaded.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as current_apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

FIXTURE = Path(__file__).parent / "fixtures" / "seed_demo_before_payouts_app.json.gz"
# Each app's last migration before payouts got an app of their own.
BEFORE_MOVE = [
    ("orders", "0001_initial"),
    ("refunds", "0002_case_payout_blocked_at"),
    ("disputes", "0001_initial"),
    ("notifications", "0002_claim_token"),
    ("payouts", None),
]
MOVED = {"orders.payout": "payouts.payout", "orders.gatewayrefund": "payouts.gatewayrefund"}


def _load(old_apps: Any, objects: list[dict[str, Any]]) -> None:
    """Insert the fixture's rows through the historical models (no current code involved)."""
    by_model: dict[str, list[Any]] = {}
    for obj in objects:
        model = old_apps.get_model(obj["model"])
        values = {"pk": obj["pk"]}
        for field in model._meta.concrete_fields:
            if field.name in obj["fields"]:
                raw = obj["fields"][field.name]
                values[field.attname] = raw if field.is_relation else field.to_python(raw)
        by_model.setdefault(obj["model"], []).append(model(**values))
    # Foreign keys are checked at commit (deferred), so the insertion order does not matter.
    for label, rows in by_model.items():
        old_apps.get_model(label).objects.bulk_create(rows)


def _migrate(targets: list[tuple[str, str | None]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_seed_demo_rows_and_amounts_survive_the_move_to_the_payouts_app() -> None:
    # given a database at the last migration before the move, holding a seed_demo portal
    objects = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    executor = _migrate(BEFORE_MOVE)
    try:
        old_apps = executor.loader.project_state([n for n in BEFORE_MOVE if n[1]]).apps
        _load(old_apps, objects)
        # and a staff member allowed to retry payouts under the old app label
        ContentType = old_apps.get_model("contenttypes", "ContentType")
        Permission = old_apps.get_model("auth", "Permission")
        payout_type, _ = ContentType.objects.get_or_create(app_label="orders", model="payout")
        grant, _ = Permission.objects.get_or_create(
            content_type=payout_type, codename="change_payout", defaults={"name": "Can change"}
        )
        staff = old_apps.get_model("orders", "User").objects.get(email="staff@demo.test")
        staff.user_permissions.add(grant)
    finally:
        # when the schema migrates to today's layout (always, so no later test sees the old one)
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    # then every row is there, under its new app where it moved
    expected = Counter(MOVED.get(obj["model"], obj["model"]) for obj in objects)
    for label, count in expected.items():
        assert current_apps.get_model(label).objects.count() == count, label
    # and every payout keeps its amount, status, key, order and refund case
    Payout = current_apps.get_model("payouts", "Payout")
    RefundCase = current_apps.get_model("refunds", "RefundCase")
    loaded = {obj["pk"]: obj["fields"] for obj in objects if obj["model"] == "orders.payout"}
    assert loaded, "the fixture holds payouts"
    for payout in Payout.objects.select_related("order"):
        fields = loaded[payout.pk]
        assert payout.amount == Decimal(fields["amount"])
        assert payout.status == fields["status"]
        assert payout.idempotency_key == fields["idempotency_key"]
        assert payout.order_id == fields["order"]
    cases = {obj["pk"]: obj["fields"] for obj in objects if obj["model"] == "refunds.refundcase"}
    linked = {c.pk: c.payout_id for c in RefundCase.objects.exclude(payout=None)}
    assert linked == {pk: f["payout"] for pk, f in cases.items() if f["payout"] is not None}
    assert linked, "the fixture links refund cases to payouts"
    # and the money adds up as before: reserved on each order equals its live payouts
    Order = current_apps.get_model("orders", "Order")
    for order in Order.objects.all():
        live = Payout.objects.filter(order=order).exclude(status="cancelled")
        assert order.reserved == sum((p.amount for p in live), Decimal(0)), order.number
    # and the permission granted on the old label now grants the new one
    User = current_apps.get_model("orders", "User")
    grants = User.objects.get(email="staff@demo.test").user_permissions
    assert list(grants.values_list("content_type__app_label", "codename")) == [
        ("payouts", "change_payout")
    ]
