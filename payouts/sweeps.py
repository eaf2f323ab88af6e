"""The payout hard deadline (docs/rules.md): a refund still unpaid 48 h after it was approved.

A flag-only sweep over `Payout` on the one sweep engine, with `status` as the state field: it
moves no state, it sets `overdue_alerted_at` once and writes one `payout.overdue` event per
payout, which tells staff (act on it) and the buyer (we know, we are on it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q

from kernel import windows
from kernel.sweeps import Sweep, run_sweep
from orders.models import Event

from .events import PAYOUT_OVERDUE_READS, payout_overdue_event
from .models import Payout, PayoutStatus


def _event(payout: Payout, *, at: datetime, **_system: object) -> Event:
    return payout_overdue_event(payout=payout, at=at)


def payout_overdue_sweep() -> Sweep:
    # payout_hard(approved_at) <= now  <=>  approved_at <= now - payout_hard: the window is an
    # exact duration, so the cut-off is the same instant for every payout. A payout is created
    # when its refund is approved, so `created_at` is the approval instant.
    hard = windows.window("payout_hard")
    if not isinstance(hard, timedelta):
        raise ImproperlyConfigured("payout_hard must be an exact duration")
    return Sweep(
        name="payout_overdue",
        model=Payout,
        state_field="status",
        # A payout waiting for staff is as unpaid as any (docs/rules.md, Payout states).
        states=(PayoutStatus.PENDING, PayoutStatus.FAILED, PayoutStatus.AWAITING_STAFF),
        deadline="created_at",
        lead=-hard,
        flag="overdue_alerted_at",
        # A payout a chargeback holds is unpaid on purpose until the bank decides (docs/rules.md,
        # Chargebacks): no "we are on it" to the buyer. Released, it is judged as any other.
        extra_filter=Q(held_at__isnull=True),
        event_kind="payout.overdue",
        event=_event,
        reads=PAYOUT_OVERDUE_READS,
    )


def payouts_overdue_alert(*, now: datetime, batch_size: int | None = None) -> int:
    """Alert once for every payout unpaid past its hard deadline; how many were alerted."""
    return len(run_sweep(payout_overdue_sweep(), now=now, batch_size=batch_size))
