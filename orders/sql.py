"""Hand-written reads for the pages people load most, with model instances as the result.

A queryset spends most of a small page's time before the database sees it: building the
query, compiling ~100 columns of `select_related` to SQL and walking the result through the
related-object machinery take 4–5 × the round trip of the indexed lookup itself (bench/README:
an order list's ORM query 1.1 ms against 0.23 ms for the same SQL through a cursor). The order
list and the case page run five such reads each on every view, so those reads are SQL written
out here once, with what the ORM would otherwise add still done for them:

- the SELECT list comes from the models (`Shape`), so a query names only the columns it
  joins, filters and sorts on;
- every value goes through the backend's and the field's converters, as the ORM does (so
  SQLite under `make run` yields aware datetimes, `Decimal`s, `UUID`s and decoded JSON too);
- rows become model instances through `Model.from_db`, with only the loaded fields set: a
  field a query did not load is deferred, and reading it loads it as any deferred field does
  (query-count tests would show that as a query per row).

Parameters are passed through the cursor (never formatted into the SQL); the only text
formatted in is the column list built from model metadata. Everything else keeps using the
ORM: a read earns its place here by being on a hot page, and each has a test against the
queryset it replaces.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import Model
from django.db.models.expressions import Col


@dataclass(frozen=True)
class Shape:
    """One model's part of a SELECT list: `fields` (attnames, the primary key among them) read
    from the table aliased `alias`. They are selected in the model's field order, the order
    `Model.from_db` expects."""

    model: type[Model]
    alias: str
    fields: tuple[str, ...]
    _cols: list[Col] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        meta = self.model._meta
        order = {f.attname: i for i, f in enumerate(meta.concrete_fields)}
        unknown = [name for name in self.fields if name not in order]
        if unknown:
            raise ValueError(f"{self.model.__name__} has no column {unknown}")
        if meta.pk is None or meta.pk.attname not in self.fields:
            raise ValueError(f"{self.model.__name__}: the primary key must be selected")
        names = tuple(sorted(set(self.fields), key=order.__getitem__))
        if names[0] != meta.pk.attname:
            raise ValueError(f"{self.model.__name__}: the primary key must be its first column")
        object.__setattr__(self, "fields", names)
        concrete = meta.concrete_fields
        object.__setattr__(self, "_cols", [concrete[order[n]].get_col(self.alias) for n in names])

    @property
    def columns(self) -> str:
        """`alias."column", …` for the SELECT list."""
        return ", ".join(f'{self.alias}."{col.target.column}"' for col in self._cols)

    def __len__(self) -> int:
        return len(self.fields)


def columns(*shapes: Shape) -> str:
    return ", ".join(shape.columns for shape in shapes)


def select(
    sql: str,
    params: Sequence[Any],
    shapes: Iterable[Shape],
    *,
    extra: int = 0,
    using: str = "default",
) -> list[tuple[Any, ...]]:
    """Run `sql` (its SELECT list: each shape's `columns`, in order, then `extra` plain values)
    and return one tuple per row: an instance per shape (None where a LEFT JOIN found no row:
    its primary key is NULL), then the extra values as the database returned them."""
    shapes = tuple(shapes)
    connection = connections[using]
    converters: list[tuple[int, list[Any], Col]] = []
    position = 0
    for shape in shapes:
        for col in shape._cols:
            convs = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if convs:
                converters.append((position, convs, col))
            position += 1
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw_rows = cursor.fetchall()
    result = []
    for raw in raw_rows:
        if len(raw) != position + extra:
            raise ValueError(f"expected {position + extra} columns, got {len(raw)}")
        values = list(raw)
        for pos, convs, col in converters:
            value = values[pos]
            for convert in convs:
                value = convert(value, col, connection)
            values[pos] = value
        row: list[Any] = []
        start = 0
        for shape in shapes:
            part = values[start : start + len(shape)]
            start += len(shape)
            row.append(None if part[0] is None else shape.model.from_db(using, shape.fields, part))
        row.extend(values[start:])
        result.append(tuple(row))
    return result


def prep(model: type[Model], attname: str, value: Any, *, using: str = "default") -> Any:
    """A parameter as the ORM would send it for `model.attname` (a UUID is 32 hex digits on
    SQLite, a `uuid.UUID` on PostgreSQL)."""
    target = next(f for f in model._meta.concrete_fields if f.attname == attname)
    return target.get_db_prep_value(value, connections[using], prepared=False)


def update(
    model: type[Model],
    *,
    where: Mapping[str, Any],
    values: Mapping[str, Any],
    using: str = "default",
) -> int:
    """`model.objects.filter(**where).update(**values)` for a hot path, with equality
    conditions only: one statement whose text is built once per shape, every value prepared
    as the ORM prepares it (`prep`). Returns the number of rows updated.

    For a worker that records one outcome per row thousands of times a minute, building and
    compiling the queryset cost more than the update (0.36 ms against 0.10 ms on PostgreSQL).
    """
    if not where or not values:
        raise ValueError("update needs a condition and a value")
    if any(value is None for value in where.values()):
        raise ValueError("a condition on NULL is not an equality; use the ORM")
    sql = _update_sql(model, tuple(values), tuple(where))
    params = [prep(model, name, value, using=using) for name, value in values.items()]
    params += [prep(model, name, value, using=using) for name, value in where.items()]
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


@functools.cache
def _update_sql(model: type[Model], sets: tuple[str, ...], conditions: tuple[str, ...]) -> str:
    columns_of = {f.attname: f.column for f in model._meta.concrete_fields}
    for name in sets + conditions:
        if name not in columns_of:
            raise ValueError(f"{model.__name__} has no column {name!r}")
    assignments = ", ".join(f'"{columns_of[name]}" = %s' for name in sets)
    matches = " AND ".join(f'"{columns_of[name]}" = %s' for name in conditions)
    return f'UPDATE "{model._meta.db_table}" SET {assignments} WHERE {matches}'  # noqa: S608
