"""Payout tasks: take ids, safe to run twice or concurrently, retries kept here
(docs/architecture.md, Tasks and beat)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=8,
    time_limit=120,
    soft_time_limit=90,
)
def payout_send(self, payout_id: int) -> str:  # type: ignore[no-untyped-def]
    outcome = services.payout_attempt(payout_id=payout_id)
    if outcome == "timeout":
        # Unknown: ask the gateway again with the same key, with backoff (≤ 5 min).
        raise self.retry(countdown=min(30 * 2**self.request.retries, 300))
    # "pending" waits for the gateway's webhook (the re-dispatch reads it back if none comes,
    # docs/rules.md, Payouts → Stripe); "failed" (a definite no) and "unauthorized" (a key
    # staff must fix) are not retried here.
    return outcome


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=240)
def payouts_redispatch() -> int:
    return services.payouts_redispatch()
