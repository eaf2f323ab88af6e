"""Notification tasks: ids in, safe to run twice or concurrently, retries kept here
(docs/architecture.md, Tasks and beat).

The flow: a transition commits its audit event(s) -> `queue_dispatch` (registered in
`orders.hooks.events_written`) queues `notifications_dispatch` -> it fans the events out and
queues their fresh notices in chunks (`notifications_deliver_chunk`). A notice that fails goes
on alone: `notification_deliver` is the one task that retries a notice, with backoff. Whatever
a broker outage or a dead worker drops, `notifications_redispatch` (beat, every 60 s) picks up
from the database.

Why chunks for fresh notices: one Celery message per notice costs more than sending it (the
broker round trips, the prefork hand-off, publishing); on two worker processes that alone caps
delivery below 700 notices/s before any email is rendered. Each notice of a chunk is still
claimed, sent and recorded on its own row, so the guarantees are those of the single task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError

from . import services

log = logging.getLogger(__name__)

FAN_OUT_BATCH = 1000
# Fresh notices per delivery task: large enough to spread the per-message cost, small enough
# that a chunk stays far inside its time limit even against a slow mail server.
DELIVERY_CHUNK = 50
# The first retry of a notice that failed inside a chunk (the single task's backoff follows).
FIRST_RETRY_COUNTDOWN = 15
# A dispatch stops after this many events; the next dispatch or re-dispatch carries on, so no
# single task runs into its time limit after a sweep wrote a very large batch.
DISPATCH_MAX_EVENTS = 50_000


def queue_deliveries(
    notification_ids: Iterable[int], *, chunk: int = 1, countdown: int | None = None
) -> bool:
    """Queue deliveries on one producer: one task per notice (`chunk=1`, retries and the
    re-dispatch) or per chunk of fresh notices. False when the broker is unreachable: the
    notices stay in the database, and the re-dispatch queues them."""
    ids = list(notification_ids)
    if not ids:
        return True
    try:
        with notification_deliver.app.producer_or_acquire() as producer:
            for start in range(0, len(ids), chunk):
                part = ids[start : start + chunk]
                try:
                    if len(part) == 1:
                        notification_deliver.apply_async(
                            (part[0],), producer=producer, countdown=countdown
                        )
                    else:
                        notifications_deliver_chunk.apply_async(
                            (part,), producer=producer, countdown=countdown
                        )
                except BrokerError:
                    raise
                except Exception:
                    # Only under eager execution (tests, `make run` without a worker) does the
                    # task itself run here; its failure is already recorded on the row.
                    log.warning("delivering notification(s) %s failed", part, exc_info=True)
    except (BrokerError, OSError):
        log.warning(
            "could not queue %d notification(s); the re-dispatch will send them",
            len(ids),
            exc_info=True,
        )
        return False
    return True


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=240)
def notifications_dispatch() -> int:
    """Fan out every committed, undispatched event and queue its notices."""
    created = 0
    claimed = 0
    while claimed < DISPATCH_MAX_EVENTS:
        batch = services.notifications_fan_out_batch(limit=FAN_OUT_BATCH)
        claimed += batch.events
        created += len(batch.notification_ids)
        if not queue_deliveries(batch.notification_ids, chunk=DELIVERY_CHUNK):
            break
        if batch.events < FAN_OUT_BATCH:
            break
    return created


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=15,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
    time_limit=60,
    soft_time_limit=45,
)
def notification_deliver(self, notification_id: int) -> str:  # type: ignore[no-untyped-def]
    """Send one notice. A backend error is recorded on the row and retried with exponential
    backoff (15 s … 5 min); the row's claim makes a duplicated message send nothing."""
    return services.notification_send(notification_id=notification_id)


# Far inside SEND_CLAIM (5 min), so no claim of a running chunk can run out.
@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=180, soft_time_limit=150)
def notifications_deliver_chunk(notification_ids: list[int]) -> dict[str, int]:
    """Send a chunk of fresh notices; each one that fails retries alone, with backoff.

    Redelivered after a crash (acks_late): the notices already sent are skipped by their
    claim, and the one that was being sent is re-dispatched once its claim runs out.
    """
    outcome = services.notifications_send_many(
        notification_ids=notification_ids, reraise=(SoftTimeLimitExceeded,)
    )
    queue_deliveries(outcome.failed + outcome.not_tried, countdown=FIRST_RETRY_COUNTDOWN)
    return {
        "sent": len(outcome.sent),
        "skipped": len(outcome.skipped),
        "failed": len(outcome.failed),
        "handed_back": len(outcome.not_tried),
    }


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=300, soft_time_limit=240)
def notifications_redispatch() -> int:
    """Beat, every 60 s: fan out what the commit hook could not queue, and re-queue notices
    nobody is working on (never queued, lost with a worker, or failed past their retries)."""
    notifications_dispatch()
    ids = services.notifications_due_for_redispatch()
    queue_deliveries(ids)
    return len(ids)


def queue_dispatch() -> None:
    """Registered in `orders.hooks.events_written`: runs once after each commit that wrote
    audit events. Never raises: the transition has committed, and the beat re-dispatch sends
    whatever could not be queued now."""
    try:
        notifications_dispatch.delay()
    except Exception:
        log.warning(
            "could not queue the notification dispatch; the re-dispatch will send it", exc_info=True
        )
