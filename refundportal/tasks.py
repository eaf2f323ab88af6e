"""The beat-driven sweep: the same code as `manage.py enforce_deadlines`."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=600, soft_time_limit=540)
def enforce_deadlines() -> dict[str, int]:
    from refundportal.deadlines import enforce_all

    return enforce_all()
