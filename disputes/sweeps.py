"""SLA flags of disputes (docs/rules.md): flag-only sweeps, each dispute flagged once per flag.

Nothing changes state here: the flags put a dispute first in the staff queue and write the
event that tells staff (and, past the hard deadline, the buyer). A flag column set in the same
conditional UPDATE that claims the row makes a second or concurrent run a no-op. Every event is
built by `dispute_event`, as the dispute services build theirs.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from django.db.models import Q

from kernel.sweeps import Sweep, run_sweep

from .events import DISPUTE_EVENT_READS, dispute_event
from .models import UNDECIDED_STATES, Dispute

_sweep = partial(
    Sweep,
    model=Dispute,
    event=dispute_event,
    states=tuple(str(state) for state in UNDECIDED_STATES),
    reads=DISPUTE_EVENT_READS,
)


def dispute_sweeps(now: datetime) -> list[Sweep]:
    return [
        # Past is past: `deadline <= now` in the engine, strictly after it here, as a party may
        # still act at the deadline's last microsecond.
        _sweep(
            name="dispute_statement_window",
            event_kind="dispute.statement_window_lapsed",
            deadline="statement_by",
            flag="statement_lapsed_at",
            extra_filter=Q(statement_by__lt=now, seller_statement_at__isnull=True),
        ),
        _sweep(
            name="dispute_sla_target",
            event_kind="dispute.sla_target_passed",
            deadline="decision_target",
            flag="target_flagged_at",
            extra_filter=Q(decision_target__lt=now),
        ),
        _sweep(
            name="dispute_sla_due",
            event_kind="dispute.sla_due_passed",
            deadline="decision_due",
            flag="due_flagged_at",
            extra_filter=Q(decision_due__lt=now),
        ),
    ]


def dispute_sweeps_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int]:
    """One pass of every dispute clock; returns how many disputes each flag caught."""
    return {
        sweep.name: len(run_sweep(sweep, now=now, batch_size=batch_size))
        for sweep in dispute_sweeps(now)
    }
