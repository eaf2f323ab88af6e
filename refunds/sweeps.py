"""System transitions of refund cases: every window (docs/rules.md) that ends a refund step.

Each transition sweep applies the case's own @transition (`auto_accept`, `lapse_offer`,
`expire_return`, `auto_confirm_return`): its source, target and changes are declared there, and
the next clock starts at the deadline, not when the sweep runs (a lapsed offer is closed *at*
`offer_by`, so its dispute window runs from `offer_by`). Every event is built by `case_event`,
as the per-case services build theirs.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from functools import partial

from django.db.models import Q
from kombu.exceptions import OperationalError as BrokerError

from kernel.sweeps import After, Sweep, iter_sweep, run_sweep, sweep_moves

from .events import CASE_EVENT_READS, case_event
from .models import DISPUTABLE_REASONS, RefundCase, State

log = logging.getLogger(__name__)


_sweep = partial(Sweep, model=RefundCase, event=case_event, reads=CASE_EVENT_READS)


def transition_sweeps() -> list[Sweep]:
    return [
        _sweep(
            name="auto_accept",
            event_kind="refund.auto_accepted",
            transition="auto_accept",
            deadline="respond_by",
        ),
        _sweep(
            name="offer_lapse",
            event_kind="refund.offer_lapsed",
            transition="lapse_offer",
            deadline="offer_by",
        ),
        _sweep(
            name="return_expiry",
            event_kind="refund.return_expired",
            transition="expire_return",
            deadline="return_by",
        ),
        _sweep(
            name="auto_confirm",
            event_kind="refund.return_auto_confirmed",
            transition="auto_confirm_return",
            deadline="confirm_by",
        ),
    ]


def reminder_sweeps(now: datetime) -> list[Sweep]:
    return [
        _sweep(
            name="remind_seller_response",
            event_kind="reminder.seller_response",
            states=(State.REQUESTED,),
            deadline="respond_by",
            lead=After("seller_response_reminder").duration(),
            flag="respond_reminded_at",
            extra_filter=Q(respond_by__gt=now),
        ),
        _sweep(
            name="remind_return_shipping",
            event_kind="reminder.return_shipping",
            states=(State.AWAITING_RETURN,),
            deadline="return_by",
            lead=After("return_shipping_reminder").duration(),
            flag="return_reminded_at",
            extra_filter=Q(return_by__gt=now),
        ),
        _sweep(
            name="remind_dispute_window",
            event_kind="reminder.dispute_window",
            states=(State.CLOSED,),
            deadline="dispute_by",
            lead=After("dispute_filing_reminder").duration(),
            flag="dispute_reminded_at",
            extra_filter=Q(dispute_by__gt=now, closed_reason__in=DISPUTABLE_REASONS),
        ),
    ]


class _PayoutQueue:
    """Queues the payout follow-up batch by batch as the sweep commits (memory stays flat).

    Broker unreachable: the moves have committed and the other sweeps must still run, so the
    first failure stops the queueing (no 2 s connect timeout per batch) and
    `refund_payouts_redispatch` (every enforce_all) pays the rest later.
    """

    SIZE = 500

    def __init__(self) -> None:
        self.failed = 0

    def add(self, case_ids: list[int]) -> None:
        from .tasks import refund_payouts_start

        for start in range(0, len(case_ids), self.SIZE):
            batch = case_ids[start : start + self.SIZE]
            if self.failed:
                self.failed += len(batch)
                continue
            try:
                refund_payouts_start.delay(batch)
            except (BrokerError, OSError):
                self.failed += len(batch)
                log.warning(
                    "could not queue payouts; the re-dispatch will send them", exc_info=True
                )

    def close(self) -> None:
        if self.failed:
            log.warning("%d case(s) left for the payout re-dispatch", self.failed)


def refund_sweeps_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int]:
    """One pass of every refund window; payouts for newly approved cases are queued as each
    batch commits."""
    moved: dict[str, int] = {}
    payouts = _PayoutQueue()
    for sweep in transition_sweeps():
        moved[sweep.name] = 0
        for batch in iter_sweep(sweep, now=now, batch_size=batch_size):
            moved[sweep.name] += len(batch)
            # An auto-accept that needs the item back waits for it; the rest are paid now.
            payouts.add([pk for pk, state in batch if state == State.REFUND_PENDING])
    for sweep in reminder_sweeps(now):
        moved[sweep.name] = len(run_sweep(sweep, now=now, batch_size=batch_size))
    payouts.close()
    return moved


def refund_apply_due_deadlines(*, case_ids: list[int], now: datetime) -> dict[str, int]:
    """Staff's admin button: the system transitions whose deadline has passed, for these cases
    only, through the same sweep declarations (so the FSM and the windows stay the one source).
    A case whose deadline has not passed is left as it is."""
    moved: dict[str, int] = {}
    payouts = _PayoutQueue()
    for sweep in transition_sweeps():
        only_these = Q(pk__in=case_ids)
        if sweep.extra_filter is not None:
            only_these &= sweep.extra_filter
        moves = sweep_moves(dataclasses.replace(sweep, extra_filter=only_these), now=now)
        moved[sweep.name] = len(moves)
        payouts.add([pk for pk, state in moves if state == State.REFUND_PENDING])
    payouts.close()
    return moved
