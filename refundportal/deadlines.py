"""Every window's sweep, in one place: used by the beat task and `manage.py enforce_deadlines`."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone


def enforce_all(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    from disputes.sweeps import dispute_sweeps_run
    from refunds.sweeps import refund_sweeps_run
    from refunds.tasks import refund_payouts_redispatch

    now = now or timezone.now()
    moved = refund_sweeps_run(now=now, batch_size=batch_size)
    moved.update(dispute_sweeps_run(now=now, batch_size=batch_size))
    refund_payouts_redispatch.delay()
    return moved
