"""Refund tasks: ids in, idempotent, retries here (docs/architecture.md, Tasks and beat)."""

from __future__ import annotations

from celery import shared_task

from . import services
from .drafts import refund_drafts_cleanup as drafts_cleanup


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=300,
    soft_time_limit=240,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def refund_payouts_start(case_ids: list[int]) -> int:
    """Payouts for cases a sweep approved; a case that already has one is skipped."""
    return services.refund_start_payouts(case_ids=case_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=240)
def refund_payouts_redispatch() -> int:
    """Catches cases approved while the broker was down (their follow-up was never queued)."""
    return services.refund_start_payouts(case_ids=services.refund_cases_awaiting_payout())


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=240)
def refund_drafts_cleanup() -> int:
    """Files of refund drafts nobody filed, once they are too old to be filed with."""
    return drafts_cleanup()
