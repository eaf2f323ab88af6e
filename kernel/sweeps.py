"""The set-based sweep engine: system transitions in batches, never row by row.

A transition's source states, target and the fields that change with it are declared once, on
its `@transition` (`custom=changes(...)`): the model's method applies that declaration to one
row, and a sweep applies the same declaration to every due row in one UPDATE. A sweep claims a
batch of due rows with SELECT … FOR UPDATE SKIP LOCKED, moves them with one conditional UPDATE
per group of equal values, and writes their audit events in bulk, through the same event
function the per-row services use, in the same transaction. Two sweeps running at once claim
disjoint batches, so every due row moves exactly once. The state field is a parameter: payouts
(`status`) are swept by the same engine. See docs/architecture.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q

from kernel import windows
from orders.events import events_written_on_commit
from orders.models import Event

# --- what a transition changes, declared on its @transition ---------------------------------


class _At:
    """The instant the transition happens: the `at` of the method; for a sweep, the deadline
    that passed (the next clock starts at the deadline, not when the sweep ran)."""

    def __repr__(self) -> str:
        return "AT"


AT = _At()


@dataclass(frozen=True)
class After:
    """The instant plus an exact-duration window of kernel.windows (minutes or hours), e.g.
    `dispute_by = closed_at + 48 h`. Calendar-day windows end at a local midnight: `OnLocalDay`."""

    window: str

    def duration(self) -> timedelta:
        value = windows.window(self.window)
        if not isinstance(value, timedelta):
            raise ImproperlyConfigured(
                f"window {self.window!r} is counted in days: use OnLocalDay, not After"
            )
        return value


@dataclass(frozen=True)
class OnLocalDay:
    """A calendar-day deadline computed by kernel.windows from the instant. It must depend
    only on the instant's marketplace-local date, so a sweep computes it once per local date."""

    compute: Callable[[datetime], datetime]


@dataclass(frozen=True)
class Outcome:
    """Field values a transition sets on a row that matches `when` (equality on the row's
    fields). Outcomes are tried in order; the first that matches wins, and one without `when`
    takes every row left. `target` names the state for a `RETURN_VALUE` transition; otherwise
    the @transition's own target applies. Values are constants, `AT`, `After`, `OnLocalDay`
    or `F("field")` (another field of the row as it was)."""

    values: Mapping[str, Any]
    when: Mapping[str, Any] = field(default_factory=dict)
    target: str | None = None


def changes(*outcomes: Outcome) -> dict[str, Any]:
    """The `custom=` of a `@transition`: what it changes, for the method and for sweeps."""
    return {"outcomes": outcomes}


def _transitions(model: type[models.Model], method: str) -> list[Any]:
    meta = getattr(getattr(model, method), "_django_fsm")  # noqa: B009
    return list(meta.transitions.values())


def fsm_sources(model: type[models.Model], method: str) -> list[str]:
    """The states from which `model.method` is allowed, read off its @transition."""
    return [str(t.source) for t in _transitions(model, method)]


def fsm_outcomes(model: type[models.Model], method: str) -> tuple[Outcome, ...]:
    """What `model.method` changes, each outcome with its target state, off its @transition."""
    first = _transitions(model, method)[0]
    outcomes = first.custom.get("outcomes")
    if not outcomes:
        raise ImproperlyConfigured(f"{model.__name__}.{method} declares no changes")
    allowed = getattr(first.target, "allowed_states", None)
    resolved = []
    for outcome in outcomes:
        target = outcome.target or (None if allowed else first.target)
        if target is None or (allowed and target not in allowed):
            raise ImproperlyConfigured(f"{model.__name__}.{method}: outcome target {target!r}")
        resolved.append(Outcome(values=outcome.values, when=outcome.when, target=str(target)))
    return tuple(resolved)


def _matches(row: Any, when: Mapping[str, Any]) -> bool:
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return all(get(k) == v for k, v in when.items())


def transition_apply(instance: models.Model, method: str, *, at: datetime) -> str:
    """Apply `method`'s declared changes to one row, as the method body; returns the target
    (what a `RETURN_VALUE` transition returns)."""
    for outcome in fsm_outcomes(type(instance), method):
        if _matches(instance, outcome.when):
            for name, value in outcome.values.items():
                setattr(instance, name, _value_at(instance, value, at))
            return str(outcome.target)
    raise ImproperlyConfigured(f"{type(instance).__name__}.{method}: no outcome matches")


def _value_at(instance: models.Model, value: Any, at: datetime) -> Any:
    if value is AT:
        return at
    if isinstance(value, After):
        return at + value.duration()
    if isinstance(value, OnLocalDay):
        return value.compute(at)
    if isinstance(value, F):
        return getattr(instance, value.name)  # type: ignore[attr-defined]
    return value


# --- a sweep ------------------------------------------------------------------------------------

# Called as event(row, kind=, actor=None, from_state=, at=now): the row's audit event, unsaved.
EventBuilder = Callable[..., Event]


@dataclass(frozen=True)
class Sweep:
    name: str
    model: type[models.Model]
    deadline: str
    event_kind: str
    # Builds the row's audit event with the same event function its per-row service uses.
    event: EventBuilder
    # The @transition the sweep applies; None for a flag-only sweep (reminders, SLA flags),
    # which instead requires `flag` to be null and sets it.
    transition: str | None = None
    states: tuple[str, ...] = ()
    state_field: str = "state"
    flag: str | None = None
    extra_filter: Q | None = None
    # What the deadline is compared with: `now` itself, or now + lead (reminders fire early).
    lead: timedelta | None = None
    # The fields (and fields of relations) the event reads: the moved rows are fetched with
    # only these, their relations joined.
    reads: tuple[str, ...] = ()

    def sources(self) -> list[str]:
        if self.transition:
            return fsm_sources(self.model, self.transition)
        return list(self.states)

    def outcomes(self) -> tuple[Outcome, ...]:
        return fsm_outcomes(self.model, self.transition) if self.transition else ()

    def cutoff(self, now: datetime) -> datetime:
        return now + self.lead if self.lead is not None else now


# (id, state the row was moved to)
Move = tuple[int, str]


def run_sweep(
    sweep: Sweep, *, now: datetime, batch_size: int | None = None, limit: int | None = None
) -> list[int]:
    """Move every due row once; return the ids moved by this run."""
    return [pk for pk, _state in sweep_moves(sweep, now=now, batch_size=batch_size, limit=limit)]


def sweep_moves(
    sweep: Sweep, *, now: datetime, batch_size: int | None = None, limit: int | None = None
) -> list[Move]:
    """`run_sweep`, with the state each row was moved to (for follow-up work)."""
    return [
        move
        for batch in iter_sweep(sweep, now=now, batch_size=batch_size, limit=limit)
        for move in batch
    ]


def iter_sweep(
    sweep: Sweep, *, now: datetime, batch_size: int | None = None, limit: int | None = None
) -> Iterator[list[Move]]:
    """The sweep batch by batch: each batch is yielded once its transaction has ended (committed,
    unless the caller holds an outer one), so a caller can queue its follow-up work per batch
    and hold no more than one batch in memory however many rows are due."""
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        batch = _run_batch(sweep, now=now, batch_size=size)
        done += len(batch)
        if batch:
            yield batch
        if len(batch) < size:
            break


def _due(sweep: Sweep, now: datetime) -> models.QuerySet[Any]:
    qs: models.QuerySet[Any] = sweep.model._default_manager.filter(
        **{
            f"{sweep.state_field}__in": sweep.sources(),
            f"{sweep.deadline}__lte": sweep.cutoff(now),
        }
    )
    if sweep.flag:
        qs = qs.filter(**{f"{sweep.flag}__isnull": True})
    if sweep.extra_filter is not None:
        qs = qs.filter(sweep.extra_filter)
    return qs


def _claim(sweep: Sweep, now: datetime, size: int) -> models.QuerySet[Any]:
    """The due rows a batch takes: oldest deadline first, skipping rows another worker holds."""
    qs = _due(sweep, now)
    outcomes = sweep.outcomes()
    if outcomes and all(o.when for o in outcomes):
        # A row no outcome matches would be claimed and never moved.
        qs = qs.filter(reduce(or_, (Q(**o.when) for o in outcomes)))
    return qs.select_for_update(skip_locked=True, of=("self",)).order_by(sweep.deadline, "id")[
        :size
    ]


def claim_sql(sweep: Sweep, *, now: datetime, batch_size: int | None = None) -> tuple[str, Any]:
    """The SQL and parameters of a sweep's claim (for EXPLAIN in bench/sweep.py)."""
    qs = _claim(sweep, now, batch_size or settings.SWEEP_BATCH_SIZE).values("id")
    with transaction.atomic(using=qs.db):  # select_for_update compiles only in a transaction
        return qs.query.get_compiler(using=qs.db).as_sql()


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)


def _local_day(instant: datetime) -> date:
    return windows.to_marketplace(instant).date()


def _set_value(sweep: Sweep, value: Any) -> Any:
    """A declared value as an UPDATE expression; the instant is the row's deadline."""
    if value is AT:
        return F(sweep.deadline)
    if isinstance(value, After):
        return ExpressionWrapper(F(sweep.deadline) + value.duration(), output_field=DateTimeField())
    return value


def _groups(
    sweep: Sweep, rows: list[dict[str, Any]], now: datetime
) -> Iterable[tuple[list[int], str | None, dict[str, Any]]]:
    """(ids, target state or None, values) per group of rows that take equal values."""
    stamp = {"updated_at": now} if _has_field(sweep.model, "updated_at") else {}
    if sweep.flag:
        yield [r["id"] for r in rows], None, {sweep.flag: now, **stamp}
        return
    left = rows
    for outcome in sweep.outcomes():
        taken = [r for r in left if _matches(r, outcome.when)]
        left = [r for r in left if not _matches(r, outcome.when)]
        if not taken:
            continue
        per_day = {k: v for k, v in outcome.values.items() if isinstance(v, OnLocalDay)}
        fixed = {
            sweep.state_field: outcome.target,
            **stamp,
            **{k: _set_value(sweep, v) for k, v in outcome.values.items() if k not in per_day},
        }
        if not per_day:
            yield [r["id"] for r in taken], outcome.target, fixed
            continue
        by_day: dict[date, list[int]] = defaultdict(list)
        first: dict[date, datetime] = {}
        for r in taken:
            day = _local_day(r[sweep.deadline])
            by_day[day].append(r["id"])
            first.setdefault(day, r[sweep.deadline])
        for day, ids in by_day.items():
            computed = {k: v.compute(first[day]) for k, v in per_day.items()}
            yield ids, outcome.target, {**fixed, **computed}


def _fetch(sweep: Sweep, ids: list[int]) -> models.QuerySet[Any]:
    """The moved rows as their event reads them: a few columns of each row and of its joined
    relations, where whole rows cost thousands of needless timestamp parses per batch."""
    qs: models.QuerySet[Any] = sweep.model._default_manager.filter(id__in=ids).order_by("id")
    if not sweep.reads:
        return qs
    joined = {name.rsplit("__", 1)[0] for name in sweep.reads if "__" in name}
    return qs.select_related(*joined).only(*sweep.reads)


@transaction.atomic
def _run_batch(sweep: Sweep, *, now: datetime, batch_size: int) -> list[Move]:
    when_columns = {k for o in sweep.outcomes() for k in o.when}
    columns = dict.fromkeys(["id", sweep.state_field, sweep.deadline, *sorted(when_columns)])
    rows = list(_claim(sweep, now, batch_size).values(*columns))
    if not rows:
        return []
    was = {r["id"]: str(r[sweep.state_field]) for r in rows}
    moved: list[Move] = []
    for ids, target, values in _groups(sweep, rows, now):
        # Conditional: the claimed rows are locked, and a row that no longer matches stays.
        _due(sweep, now).filter(id__in=ids).update(**values)
        moved += [(pk, target or was[pk]) for pk in ids]
    events = [
        # A system transition: no actor.
        sweep.event(obj, kind=sweep.event_kind, actor=None, from_state=was[obj.pk], at=now)
        for obj in _fetch(sweep, list(was))
    ]
    Event.objects.bulk_create(events, batch_size=2000)
    events_written_on_commit()
    return moved
