"""The set-based sweep engine (STYLE §6): system transitions in batches, never row by row.

A sweep asks the state machine which source states allow its transition (the FSM stays the one
source of the rules), claims a batch of due rows with SELECT … FOR UPDATE SKIP LOCKED, moves
them with one conditional UPDATE, and writes their audit events in bulk in the same transaction.
Two sweeps running at once claim disjoint batches, so every due row moves exactly once.

Two paths, one meaning:

* on PostgreSQL, when the event builder carries its SQL twin (`SweepEvents`), each batch is ONE
  statement: the claim (`id = ANY(ARRAY(SELECT id … ORDER BY deadline LIMIT n FOR UPDATE SKIP
  LOCKED))`), the UPDATE (`RETURNING` what the events need) and `INSERT INTO orders_event …
  SELECT … FROM moved` in data-modifying CTEs. Only the moved ids (and new states) come back.
* everywhere else (SQLite under `make run`, or an event builder without an SQL twin) the
  portable ORM path: claim, one UPDATE per group of equal
  values, `bulk_create` of the events built in Python.

What a sweep sets is declared once (`Outcome`) and read by both paths, so they cannot drift;
`tests/test_sweep_engine.py` compares their events on PostgreSQL.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.expressions import Combinable

from . import windows
from .events import events_written_on_commit
from .models import Event, Order, PaymentMethod, Shop


def fsm_sources(model: type[models.Model], method: str) -> list[str]:
    """The states from which `model.method` is allowed, read off its @transition."""
    meta = getattr(getattr(model, method), "_django_fsm")  # noqa: B009
    return [str(source) for source in meta.transitions]


# --- what a sweep sets --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shifted:
    """`column` plus an exact-duration window of orders.windows (minutes or hours), e.g.
    `dispute_by = offer_by + 48 h`. The duration is bound as a parameter; calendar-day windows
    are refused here (they end at a local midnight: see `PerLocalDay`)."""

    column: str
    window: str

    def duration(self) -> timedelta:
        value = windows.window(self.window)
        if not isinstance(value, timedelta):
            raise ImproperlyConfigured(
                f"window {self.window!r} is counted in days: use PerLocalDay, not Shifted"
            )
        return value


@dataclass(frozen=True)
class PerLocalDay:
    """A calendar-day deadline computed by orders.windows from the sweep's deadline column.

    `compute(instant)` must depend only on the instant's marketplace-local date (true of every
    calendar-day window of SPEC §3), so it runs once per local date, never in SQL.
    """

    column: str
    compute: Callable[[datetime], datetime]


@dataclass(frozen=True)
class Outcome:
    """Field values a sweep sets on the claimed rows that match `when` (equality on columns of
    the row as claimed). Outcomes are tried in order; the first that matches wins, and an
    outcome without `when` takes every row left. Values are constants, `F("column")`,
    `Shifted` or `PerLocalDay`."""

    values: Mapping[str, Any]
    when: Mapping[str, Any] = field(default_factory=dict)


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
    # What the transition sets (both paths read it); empty for a flag-only sweep.
    outcomes: tuple[Outcome, ...] = ()

    def __post_init__(self) -> None:
        for outcome in self.outcomes:
            for value in outcome.values.values():
                if isinstance(value, PerLocalDay) and value.column != self.deadline:
                    raise ImproperlyConfigured(
                        f"sweep {self.name}: PerLocalDay reads the deadline column "
                        f"{self.deadline!r}, not {value.column!r}"
                    )

    def sources(self) -> list[str]:
        if self.method:
            return fsm_sources(self.model, self.method)
        return list(self.states)

    def cutoff(self, now: datetime) -> datetime:
        return now + self.lead if self.lead is not None else now

    def from_state(self) -> str:
        """The `from_state` of this sweep's events: its one source state, else blank."""
        sources = self.sources()
        return sources[0] if len(sources) == 1 else ""


@dataclass
class SweepResult:
    moved: list[int] = field(default_factory=list)


EventBuilder = Callable[[list[int], Sweep, datetime], list[Event]]


# --- the events' SQL twin ----------------------------------------------------------------------

# (payload key, SQL expression over the moved row `m` and the joins, parameters)
PayloadSql = list[tuple[str, str, list[Any]]]


@dataclass(frozen=True)
class SqlEvents:
    """How the PostgreSQL path writes a sweep's events: `INSERT … SELECT … FROM moved AS m`.

    `returning` names the columns (database column names) of the moved rows the SELECT reads,
    besides `id` and `state`; `joins` follows `FROM moved AS m` (see `ORDER_JOINS`); the other
    fields are SQL expressions for the event's columns and its payload.
    """

    returning: tuple[str, ...]
    joins: str
    order_id: str
    payload: Callable[[Sweep], PayloadSql]
    case_id: str = "NULL"
    dispute_id: str = "NULL"
    from_state: str | None = None  # SQL; default: the sweep's one source state, else blank


@dataclass(frozen=True)
class SweepEvents:
    """An event builder for both paths: called like any `EventBuilder` on the portable path,
    and carrying the SQL twin the PostgreSQL path writes the same events with."""

    build: EventBuilder
    sql: SqlEvents

    def __call__(self, ids: list[int], sweep: Sweep, now: datetime) -> list[Event]:
        return self.build(ids, sweep, now)


def _table(model: type[models.Model]) -> str:
    return connections[router.db_for_write(model)].ops.quote_name(model._meta.db_table)


# The order and its shop, for the keys every notice carries (orders.events.order_payload).
ORDER_JOINS = (
    f"JOIN {Order._meta.db_table} AS o ON o.id = m.order_id "
    f"JOIN {Shop._meta.db_table} AS s ON s.id = o.shop_id"
)


def iso_sql(expr: str) -> str:
    """`expr` (timestamptz) as `datetime.isoformat()` writes an aware UTC datetime:
    `2026-11-08T15:59:59.999999+00:00`, the fraction only when it is not zero."""
    utc = f"({expr} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {utc} = date_trunc('second', {utc}) "
        f'THEN to_char({utc}, \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\') '
        f'ELSE to_char({utc}, \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\') END'
    )


def order_payload_sql(roles: Iterable[str]) -> PayloadSql:
    """The SQL twin of `orders.events.recipients` + `order_payload` over the aliases of
    `ORDER_JOINS`: notify, order_number, currency, shop, payment_method_label."""
    roles = set(roles)
    notify = []
    if "buyer" in roles:
        notify.append("'buyer', o.buyer_id")
    if "seller" in roles:
        notify.append("'seller', s.owner_id")
    if "staff" in roles:
        notify.append("'staff', true")
    # Order.payment_method_label: "<brand or Card> ••<last4>" for a card, else the label.
    label = [
        "CASE WHEN o.payment_method = %s AND o.card_last4 <> '' "
        "THEN COALESCE(NULLIF(o.card_brand, ''), %s) || %s || o.card_last4"
    ]
    params: list[Any] = [PaymentMethod.CARD.value, "Card", " ••"]
    for value, text in PaymentMethod.choices:
        label.append("WHEN o.payment_method = %s THEN %s")
        params += [value, str(text)]
    label.append("ELSE o.payment_method END")
    return [
        ("notify", f"jsonb_build_object({', '.join(notify)})", []),
        ("order_number", "o.number", []),
        ("currency", "o.currency", []),
        ("shop", "s.name", []),
        ("payment_method_label", " ".join(label), params),
    ]


# --- running a sweep ----------------------------------------------------------------------------


def run_sweep(
    sweep: Sweep,
    *,
    now: datetime,
    build_events: EventBuilder,
    batch_size: int | None = None,
    limit: int | None = None,
    portable: bool = False,
) -> list[int]:
    """Move every due row once; return the ids moved by this run (for follow-up work).

    `portable=True` forces the ORM path (tests compare the two on PostgreSQL).
    """
    return [
        pk
        for pk, _state in sweep_moves(
            sweep,
            now=now,
            build_events=build_events,
            batch_size=batch_size,
            limit=limit,
            portable=portable,
        )
    ]


# (id, state the row was moved to)
Move = tuple[int, str]


def sweep_moves(
    sweep: Sweep,
    *,
    now: datetime,
    build_events: EventBuilder,
    batch_size: int | None = None,
    limit: int | None = None,
    portable: bool = False,
) -> list[Move]:
    """`run_sweep`, with the state each row was moved to: follow-up work picks its rows from
    this instead of querying them again by id (which cost seconds at 50 000 ids)."""
    return [
        move
        for batch in iter_sweep(
            sweep,
            now=now,
            build_events=build_events,
            batch_size=batch_size,
            limit=limit,
            portable=portable,
        )
        for move in batch
    ]


def iter_sweep(
    sweep: Sweep,
    *,
    now: datetime,
    build_events: EventBuilder,
    batch_size: int | None = None,
    limit: int | None = None,
    portable: bool = False,
) -> Iterator[list[Move]]:
    """The sweep batch by batch: each batch is yielded once its transaction has ended (committed,
    unless the caller holds an outer one), so a caller can queue its follow-up work per batch
    and hold no more than one batch in memory however many rows are due."""
    batch_size = batch_size or settings.SWEEP_BATCH_SIZE
    sql = None if portable else _sql_path(sweep, build_events)
    days = _day_table(sweep, now) if sql is not None else None
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        batch = _run_batch(
            sweep, now=now, build_events=build_events, batch_size=size, sql=sql, days=days
        )
        done += len(batch)
        if batch:
            yield batch
        if len(batch) < size:
            break


def _due(sweep: Sweep, now: datetime) -> models.QuerySet[Any]:
    qs = sweep.model._default_manager.filter(  # type: ignore[attr-defined]
        state__in=sweep.sources(), **{f"{sweep.deadline}__lte": sweep.cutoff(now)}
    )
    if sweep.flag:
        qs = qs.filter(**{f"{sweep.flag}__isnull": True})
    if sweep.extra_filter is not None:
        qs = qs.filter(sweep.extra_filter)
    return qs


def _claim(
    sweep: Sweep, now: datetime, size: int, since: datetime | None = None
) -> models.QuerySet[Any]:
    """The due rows a batch takes: oldest deadline first, skipping rows another worker holds."""
    qs = _due(sweep, now)
    if sweep.outcomes and all(o.when for o in sweep.outcomes):
        # A row no outcome matches would be claimed and never moved.
        qs = qs.filter(reduce(or_, (Q(**o.when) for o in sweep.outcomes)))
    if since is not None:
        qs = qs.filter(**{f"{sweep.deadline}__gte": since})
    return qs.select_for_update(skip_locked=True, of=("self",)).order_by(sweep.deadline, "id")[
        :size
    ]


def claim_sql(sweep: Sweep, *, now: datetime, batch_size: int | None = None) -> tuple[str, Any]:
    """The SQL and parameters of a sweep's claim (for EXPLAIN in bench/sweep.py)."""
    qs = _claim(sweep, now, batch_size or settings.SWEEP_BATCH_SIZE).values("id")
    with transaction.atomic(using=qs.db):  # select_for_update compiles only in a transaction
        return qs.query.get_compiler(using=qs.db).as_sql()


@transaction.atomic
def _run_batch(
    sweep: Sweep,
    *,
    now: datetime,
    build_events: EventBuilder,
    batch_size: int,
    sql: SqlEvents | None = None,
    days: _DayTable | None = None,
) -> list[Move]:
    if sql is not None:
        moved = _sql_batch(sweep, now=now, events=sql, batch_size=batch_size, days=days)
    else:
        moved = _orm_batch(sweep, now=now, build_events=build_events, batch_size=batch_size)
    if moved:
        events_written_on_commit()
    return moved


# --- the portable path --------------------------------------------------------------------------


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.concrete_fields)


def _local_day(instant: datetime) -> date:
    return windows.to_marketplace(instant).date()


def _orm_value(value: Any) -> Any:
    if isinstance(value, Shifted):
        return ExpressionWrapper(F(value.column) + value.duration(), output_field=DateTimeField())
    return value


def _outcome_groups(
    sweep: Sweep, rows: list[dict[str, Any]]
) -> Iterable[tuple[list[int], dict[str, Any]]]:
    left = rows
    for outcome in sweep.outcomes:
        taken = [r for r in left if all(r[k] == v for k, v in outcome.when.items())]
        taken_ids = {r["id"] for r in taken}
        left = [r for r in left if r["id"] not in taken_ids]
        per_day = {k: v for k, v in outcome.values.items() if isinstance(v, PerLocalDay)}
        fixed = {k: _orm_value(v) for k, v in outcome.values.items() if k not in per_day}
        if not per_day:
            yield [r["id"] for r in taken], fixed
            continue
        by_day: dict[date, list[int]] = defaultdict(list)
        first: dict[date, datetime] = {}
        for r in taken:
            day = _local_day(r[sweep.deadline])
            by_day[day].append(r["id"])
            first.setdefault(day, r[sweep.deadline])
        for day, ids in by_day.items():
            yield ids, {**fixed, **{k: v.compute(first[day]) for k, v in per_day.items()}}


def _orm_batch(
    sweep: Sweep, *, now: datetime, build_events: EventBuilder, batch_size: int
) -> list[Move]:
    when_columns = {k for o in sweep.outcomes for k in o.when}
    columns = dict.fromkeys(["id", "state", sweep.deadline, *sorted(when_columns)])
    rows = list(_claim(sweep, now, batch_size).values(*columns))
    if not rows:
        return []
    groups: Iterable[tuple[list[int], dict[str, Any]]] = (
        _outcome_groups(sweep, rows) if sweep.outcomes else [([r["id"] for r in rows], {})]
    )
    stamp = {"updated_at": now} if _has_field(sweep.model, "updated_at") else {}
    state_of = {r["id"]: r["state"] for r in rows}
    moved: list[Move] = []
    for ids, values in groups:
        if not ids:
            continue
        if sweep.flag:
            values = {sweep.flag: now, **values}
        # Conditional: a row a user action moved meanwhile no longer matches and stays as it is.
        _due(sweep, now).filter(id__in=ids).update(**stamp, **values)
        moved.extend((pk, str(values.get("state", state_of[pk]))) for pk in ids)
    Event.objects.bulk_create(build_events([pk for pk, _s in moved], sweep, now), batch_size=2000)
    return moved


# --- the PostgreSQL path ------------------------------------------------------------------------


def _sql_path(sweep: Sweep, build_events: EventBuilder) -> SqlEvents | None:
    connection = connections[router.db_for_write(sweep.model)]
    if connection.vendor != "postgresql":
        return None
    sql = getattr(build_events, "sql", None)
    return sql if isinstance(sql, SqlEvents) else None


@dataclass(frozen=True)
class _DayTable:
    """Calendar-day deadlines of a run, computed in Python once per marketplace-local date from
    the oldest due deadline to the cutoff; SQL picks a row's value by binary search
    (`width_bucket`) over the UTC starts of those dates."""

    starts: list[datetime]
    values: dict[str, list[datetime]]


def _day_table(sweep: Sweep, now: datetime) -> _DayTable | None:
    per_day = {
        k: v for o in sweep.outcomes for k, v in o.values.items() if isinstance(v, PerLocalDay)
    }
    if not per_day:
        return None
    oldest = (
        _due(sweep, now).order_by(sweep.deadline).values_list(sweep.deadline, flat=True).first()
    )
    if oldest is None:
        oldest = sweep.cutoff(now)  # nothing due yet: a one-day table keeps the claim valid
    tz = windows.marketplace_tz()
    day, last = _local_day(oldest), _local_day(sweep.cutoff(now))
    starts: list[datetime] = []
    values: dict[str, list[datetime]] = {k: [] for k in per_day}
    while day <= last:
        start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
        starts.append(start)
        for key, value in per_day.items():
            values[key].append(value.compute(start))
        day += timedelta(days=1)
    return _DayTable(starts=starts, values=values)


def _column(model: type[models.Model], name: str) -> str:
    return str(model._meta.get_field(name).column)  # type: ignore[union-attr]


def _sql_value(
    model: type[models.Model],
    name: str,
    value: Any,
    deadline: str,
    days: _DayTable | None,
    connection: Any,
) -> tuple[str, list[Any]]:
    qn = connection.ops.quote_name
    if isinstance(value, F):
        return f"t.{qn(_column(model, value.name))}", []  # type: ignore[attr-defined]
    if isinstance(value, Shifted):
        return f"t.{qn(_column(model, value.column))} + %s", [value.duration()]
    if isinstance(value, PerLocalDay):
        assert days is not None
        return (
            f"(%s::timestamptz[])[width_bucket(t.{qn(_column(model, deadline))}, "
            f"%s::timestamptz[])]",
            [days.values[name], days.starts],
        )
    if isinstance(value, Combinable):
        raise TypeError(f"{name}: only constants, F(), Shifted and PerLocalDay can be swept")
    db_field = model._meta.get_field(name)
    return "%s", [db_field.get_db_prep_save(value, connection)]  # type: ignore[union-attr]


def _sql_sets(
    sweep: Sweep, now: datetime, days: _DayTable | None, connection: Any
) -> tuple[str, list[Any]]:
    model, qn = sweep.model, connection.ops.quote_name
    outcomes = list(sweep.outcomes)
    if sweep.flag:
        outcomes = [
            Outcome(values={sweep.flag: now, **o.values}, when=o.when) for o in outcomes
        ] or [Outcome(values={sweep.flag: now})]
    if _has_field(model, "updated_at"):
        outcomes = [
            Outcome(values={**o.values, "updated_at": now}, when=o.when) for o in outcomes
        ] or [Outcome(values={"updated_at": now})]
    names = list(dict.fromkeys(k for o in outcomes for k in o.values))
    sets, params = [], []
    for name in names:
        column = qn(_column(model, name))
        if len(outcomes) == 1 and not outcomes[0].when:
            expr, p = _sql_value(
                model, name, outcomes[0].values[name], sweep.deadline, days, connection
            )
            sets.append(f"{column} = {expr}")
            params += p
            continue
        parts = []
        for outcome in outcomes:
            if name not in outcome.values:
                if not outcome.when:
                    break  # the catch-all leaves this column alone
                parts.append(
                    "WHEN " + _sql_when(model, outcome, params, connection) + f" THEN t.{column}"
                )
                continue
            cond = _sql_when(model, outcome, params, connection) if outcome.when else "TRUE"
            expr, p = _sql_value(
                model, name, outcome.values[name], sweep.deadline, days, connection
            )
            parts.append(f"WHEN {cond} THEN {expr}")
            params += p
        sets.append(f"{column} = CASE {' '.join(parts)} ELSE t.{column} END")
    return ", ".join(sets), params


def _sql_when(
    model: type[models.Model], outcome: Outcome, params: list[Any], connection: Any
) -> str:
    qn = connection.ops.quote_name
    conds = []
    for name, value in outcome.when.items():
        column = f"t.{qn(_column(model, name))}"
        if value is None:
            conds.append(f"{column} IS NULL")
        else:
            conds.append(f"{column} = %s")
            params.append(
                model._meta.get_field(name).get_db_prep_save(  # type: ignore[union-attr]
                    value, connection
                )
            )
    return "(" + " AND ".join(conds) + ")"


_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def _sql_batch(
    sweep: Sweep, *, now: datetime, events: SqlEvents, batch_size: int, days: _DayTable | None
) -> list[Move]:
    statement, params = _sql_batch_statement(
        sweep, now=now, events=events, batch_size=batch_size, days=days
    )
    with connections[router.db_for_write(sweep.model)].cursor() as cursor:
        cursor.execute(statement, params)
        return [(row[0], row[1]) for row in cursor.fetchall()]


def _sql_batch_statement(
    sweep: Sweep, *, now: datetime, events: SqlEvents, batch_size: int, days: _DayTable | None
) -> tuple[str, list[Any]]:
    model = sweep.model
    connection = connections[router.db_for_write(model)]
    qn = connection.ops.quote_name
    claim = _claim(sweep, now, batch_size, since=days.starts[0] if days else None).values("id")
    claim_sql_text, claim_params = claim.query.get_compiler(using=claim.db).as_sql()
    sets, set_params = _sql_sets(sweep, now, days, connection)
    returning = ", ".join(
        f"t.{qn(c)}" for c in dict.fromkeys(["id", _column(model, "state"), *events.returning])
    )
    payload, payload_params = [], []
    for key, expr, p in events.payload(sweep):
        if not _KEY.match(key):
            raise ValueError(f"payload key {key!r}")
        payload.append(f"'{key}', {expr}")
        payload_params += p
    ev_columns = ", ".join(
        qn(_column(Event, name))
        for name in (
            "order",
            "case_id",
            "dispute_id",
            "actor",
            "kind",
            "from_state",
            "to_state",
            "note",
            "payload",
            "created_at",
            "dispatched_at",
        )
    )
    from_state_sql, from_state_params = (
        (events.from_state, []) if events.from_state else ("%s", [sweep.from_state()])
    )
    # The claim is an ARRAY(...) InitPlan, so the UPDATE finds the rows by primary key; a join
    # with a CTE of claimed ids made the planner scan the whole table (STYLE §6). State and
    # deadline are checked again: the UPDATE is conditional like the portable one. A
    # data-modifying CTE runs to completion whether or not the outer SELECT reads it.
    # Identifiers come from model metadata and code constants; every value is a parameter.
    statement = (
        f"WITH moved AS ("  # noqa: S608
        f"UPDATE {_table(model)} AS t SET {sets} "
        f"WHERE t.id = ANY(ARRAY({claim_sql_text})) "
        f"AND t.{qn(_column(model, 'state'))} = ANY(%s) "
        f"AND t.{qn(_column(model, sweep.deadline))} <= %s "
        f"RETURNING {returning}), "
        f"written AS ("
        f"INSERT INTO {_table(Event)} ({ev_columns}) "
        f"SELECT {events.order_id}, {events.case_id}, {events.dispute_id}, NULL, %s, "
        f"{from_state_sql}, m.state, '', jsonb_build_object({', '.join(payload)}), %s, NULL "
        f"FROM moved AS m {events.joins}) "
        f"SELECT m.id, m.state FROM moved AS m"
    )
    params = [
        *set_params,
        *claim_params,
        sweep.sources(),
        sweep.cutoff(now),
        sweep.event_kind,
        *from_state_params,
        *payload_params,
        now,
    ]
    return statement, params


def sweep_statement(
    sweep: Sweep, *, now: datetime, build_events: EventBuilder, batch_size: int | None = None
) -> tuple[str, list[Any]]:
    """The PostgreSQL path's statement for one batch, unexecuted (for EXPLAIN in bench/).

    Call it inside a transaction: the claim's FOR UPDATE compiles only there.
    """
    sql = _sql_path(sweep, build_events)
    if sql is None:
        raise ValueError(f"sweep {sweep.name} has no PostgreSQL path here")
    return _sql_batch_statement(
        sweep,
        now=now,
        events=sql,
        batch_size=batch_size or settings.SWEEP_BATCH_SIZE,
        days=_day_table(sweep, now),
    )
