"""The set-based sweep engine (STYLE §6): system transitions in batches, never row by row.

A sweep asks the state machine which source states allow its transition (the FSM stays the one
source of the rules), claims a batch of due rows with SELECT … FOR UPDATE SKIP LOCKED, moves
them with one conditional UPDATE, and writes their audit events in bulk in the same transaction.
Two sweeps running at once claim disjoint batches, so every due row moves exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction

from .models import Event


def fsm_sources(model: type[models.Model], method: str) -> list[str]:
    """The states from which `model.method` is allowed, read off its @transition."""
    meta = getattr(getattr(model, method), "_django_fsm")  # noqa: B009
    return [str(source) for source in meta.transitions]


# A function of the claimed rows (each a dict with "id" and the deadline) giving groups of ids
# with the field values to set on them; the sweep issues one UPDATE per group.
Grouper = Callable[[list[dict[str, Any]]], Iterable[tuple[list[int], dict[str, Any]]]]


@dataclass(frozen=True)
class Sweep:
    name: str
    model: type[models.Model]
    deadline: str
    event_kind: str
    # The transition whose source states the sweep may move; None for a flag-only sweep
    # (reminders), which instead requires `flag` to be null and sets it.
    method: str | None = None
    states: tuple[str, ...] = ()
    flag: str | None = None
    extra_filter: models.Q | None = None
    # What the deadline is compared with: `now` itself, or now + lead (reminders fire early).
    lead: Any = None
    group: Grouper | None = None
    extra_columns: tuple[str, ...] = field(default_factory=tuple)

    def sources(self) -> list[str]:
        if self.method:
            return fsm_sources(self.model, self.method)
        return list(self.states)


@dataclass
class SweepResult:
    moved: list[int] = field(default_factory=list)


EventBuilder = Callable[[list[int], Sweep, datetime], list[Event]]


def run_sweep(sweep: Sweep, *, now: datetime, build_events: EventBuilder,
              batch_size: int | None = None, limit: int | None = None) -> list[int]:
    """Move every due row once; return the ids moved by this run (for follow-up work)."""
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    moved: list[int] = []
    while limit is None or len(moved) < limit:
        batch = _run_batch(sweep, now=now, build_events=build_events, batch_size=batch_size)
        moved.extend(batch)
        if len(batch) < batch_size:
            break
    return moved


def _due(sweep: Sweep, now: datetime) -> models.QuerySet[Any]:
    cutoff = now + sweep.lead if sweep.lead is not None else now
    qs = sweep.model._default_manager.filter(  # type: ignore[attr-defined]
        state__in=sweep.sources(), **{f"{sweep.deadline}__lte": cutoff}
    )
    if sweep.flag:
        qs = qs.filter(**{f"{sweep.flag}__isnull": True})
    if sweep.extra_filter is not None:
        qs = qs.filter(sweep.extra_filter)
    return qs


@transaction.atomic
def _run_batch(sweep: Sweep, *, now: datetime, build_events: EventBuilder,
               batch_size: int) -> list[int]:
    rows = list(
        _due(sweep, now)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by(sweep.deadline, "id")
        .values("id", sweep.deadline, *sweep.extra_columns)[:batch_size]
    )
    if not rows:
        return []
    groups = sweep.group(rows) if sweep.group else [([r["id"] for r in rows], {})]
    moved: list[int] = []
    for ids, values in groups:
        if not ids:
            continue
        if sweep.flag:
            values = {sweep.flag: now, **values}
        # Conditional: a row a user action moved meanwhile no longer matches and stays as it is.
        _due(sweep, now).filter(id__in=ids).update(updated_at=now, **values)
        moved.extend(ids)
    Event.objects.bulk_create(build_events(moved, sweep, now), batch_size=2000)
    return moved
