"""Every window's sweep, in one place: used by the beat task and `manage.py enforce_deadlines`."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)


def enforce_all(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    from disputes.sweeps import dispute_sweeps_run
    from payouts.sweeps import payouts_overdue_alert
    from refunds.sweeps import refund_sweeps_run
    from refunds.tasks import refund_payouts_redispatch

    now = now or timezone.now()
    moved = refund_sweeps_run(now=now, batch_size=batch_size)
    moved.update(dispute_sweeps_run(now=now, batch_size=batch_size))
    moved["payout_overdue"] = payouts_overdue_alert(now=now, batch_size=batch_size)
    try:
        refund_payouts_redispatch.delay()
    except (BrokerError, OSError):
        # Broker unreachable: every sweep above has committed; the next run queues it again.
        log.warning("could not queue the refund payout re-dispatch", exc_info=True)
    return moved
