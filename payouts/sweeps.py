"""The payout hard deadline (SPEC §3): a refund still unpaid 48 h after it was approved.

A flag-only sweep over `Payout`: it moves no state, it sets `overdue_alerted_at` once and writes
one `payout.overdue` event per payout, which tells staff (act on it) and the buyer (we know,
we are on it). The generic sweep engine reads `state`; payouts have `status`, hence this small
set-based sweep of its own, written the same way (claim with SKIP LOCKED, conditional update,
events in bulk, one transaction per batch).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from orders import windows
from orders.events import events_written_on_commit
from orders.models import Event, Order

from .models import Payout, PayoutStatus

UNPAID = (PayoutStatus.PENDING, PayoutStatus.FAILED)


def _due(now: datetime) -> Any:
    # payout_hard(approved_at) <= now  <=>  approved_at <= now - payout_hard: the window is an
    # exact duration, so the cut-off is the same instant for every payout. A payout is created
    # when its refund is approved, so `created_at` is the approval instant.
    hard = windows.window("payout_hard")
    assert isinstance(hard, timedelta), "payout_hard is an exact duration (SPEC §3)"
    cutoff = now - hard
    return Payout.objects.filter(
        status__in=UNPAID, created_at__lte=cutoff, overdue_alerted_at__isnull=True
    )


@transaction.atomic
def _alert_batch(now: datetime, batch_size: int) -> int:
    ids = list(
        _due(now)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    _due(now).filter(id__in=ids).update(overdue_alerted_at=now, updated_at=now)
    rows = Payout.objects.filter(id__in=ids, overdue_alerted_at=now).values(
        "id",
        "public_id",
        "order_id",
        "amount",
        "currency",
        "status",
        "attempts",
        "failure_reason",
        "purpose",
        "subject_id",
        "created_at",
        "order__number",
        "order__shop__name",
        "order__payment_method",
        "order__card_brand",
        "order__card_last4",
        "order__buyer_id",
    )
    events = []
    for row in rows:
        order = Order(
            payment_method=row["order__payment_method"],
            card_brand=row["order__card_brand"],
            card_last4=row["order__card_last4"],
        )
        pay_by = windows.payout_hard(approved_at=row["created_at"])
        events.append(
            Event(
                order_id=row["order_id"],
                kind="payout.overdue",
                actor=None,
                from_state=row["status"],
                to_state=row["status"],
                created_at=now,
                case_id=row["subject_id"] if row["purpose"] == "refund" else None,
                payload={
                    "notify": {"buyer": row["order__buyer_id"], "staff": True},
                    "order_number": row["order__number"],
                    "currency": row["currency"],
                    "shop": row["order__shop__name"],
                    "payment_method_label": order.payment_method_label,
                    **(
                        {"case_id": str(row["subject_id"])}
                        if row["purpose"] == "refund" and row["subject_id"]
                        else {}
                    ),
                    "amount": str(row["amount"]),
                    "payout_id": str(row["public_id"]),
                    "purpose": row["purpose"],
                    "status": row["status"],
                    "attempts": row["attempts"],
                    "reason": row["failure_reason"],
                    "approved_at": row["created_at"].isoformat(),
                    "pay_by": pay_by.isoformat(),
                },
            )
        )
    Event.objects.bulk_create(events, batch_size=2000)
    events_written_on_commit()
    return len(events)


def payouts_overdue_alert(*, now: datetime, batch_size: int | None = None) -> int:
    """Alert once for every payout unpaid past its hard deadline; how many were alerted."""
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    alerted = 0
    while True:
        done = _alert_batch(now, batch_size)
        alerted += done
        if done < batch_size:
            return alerted
