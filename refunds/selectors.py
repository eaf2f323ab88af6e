"""Reads of the refunds app. Every case a user asks for is fetched with the user (STYLE §8).

A case the user may not see is simply not found (404): the buyer sees the cases on their
orders, the seller the cases on their shop's orders, staff every case.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import (
    IntegerField,
    Prefetch,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL
from django.http import Http404

from orders import windows
from orders.models import Event, Message, Order, OrderItem, Shop, User
from orders.selectors import BUYER_SHAPE, SHOP_SHAPE
from orders.sql import Shape, columns, prep, select

from .models import OPEN_STATES, Evidence, Reason, RefundCase, RefundItem
from .services import refund_window


def _visible_to(user: Any) -> Q | None:
    """The filter of what `user` may see; None means everything (staff)."""
    if user.is_staff:
        return None
    return Q(order__buyer=user) | Q(order__shop__owner=user)


def _thread_size_sql(case_table: str) -> str:
    """A correlated COUNT of the messages on the order of the case row `case_table` names."""
    order = Message._meta.get_field("order").column
    return (
        f'SELECT COUNT(*) FROM "{Message._meta.db_table}" AS thread_m '  # noqa: S608
        f'WHERE thread_m."{order}" = {case_table}."{RefundCase._meta.get_field("order").column}"'
    )


def refund_list_for_user(*, user: Any, state: str | None = None) -> QuerySet[RefundCase]:
    """Cases the user may see, newest first, with what a list row shows already loaded.

    Order, shop and buyer are joined and the items prefetched (one query for a whole page);
    `message_count` counts the order's thread (the case thread is the order's, SPEC §2) in the
    same query, so a list costs the same whether a case has 1 or 30 messages.
    """
    if not getattr(user, "is_authenticated", False):
        return RefundCase.objects.none()
    # The thread's size as a plain correlated COUNT (0 for no messages): the same number as a
    # Coalesce(Subquery(Count)) annotation, without its query-building cost on every request.
    thread = RawSQL(  # noqa: S611 - table and column names from the models, no input
        _thread_size_sql(f'"{RefundCase._meta.db_table}"'), (), output_field=IntegerField()
    )
    qs = (
        RefundCase.objects.select_related("order", "order__shop", "order__buyer")
        .prefetch_related(
            Prefetch("items", queryset=RefundItem.objects.select_related("order_item"))
        )
        .annotate(message_count=thread)
    )
    visible = _visible_to(user)
    if visible is not None:
        qs = qs.filter(visible)
    if state:
        qs = qs.filter(state=state)
    return qs


def _uuid_or_404(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise Http404(f"No such {what}.") from exc


def refund_case_read(*, user: Any, public_id: Any, message_count: bool = False) -> RefundCase:
    """One case as the case page and the API read it, in SQL, with `refund_list_for_user`'s
    visibility: the case with its order, shop, buyer and dispute (public id; or known to be
    absent), one query; 404 for a case the user may not see. `message_count=True` also
    sets `case.message_count` (the order thread's size, as `refund_list_for_user` annotates).
    The items are `refund_items_read`."""
    key = _uuid_or_404(public_id, "refund case")
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such refund case.")
    to_dispute = RefundCase._meta.get_field("dispute")
    dispute_model = to_dispute.related_model
    shapes = (_PAGE_CASE_SHAPE, _PAGE_ORDER_SHAPE, SHOP_SHAPE, BUYER_SHAPE)
    dispute = _dispute_shape()
    thread, params = "", []
    if message_count:
        thread = f", ({_thread_size_sql('c')})"
    params.append(prep(RefundCase, "public_id", key))
    visible = ""  # staff see every case
    if not user.is_staff:
        visible = ' AND (o."buyer_id" = %s OR s."owner_id" = %s)'
        params += [user.pk, user.pk]
    rows = select(
        f"SELECT {columns(*shapes, dispute)}{thread} "  # noqa: S608
        f'FROM "{RefundCase._meta.db_table}" AS c '
        f'JOIN "{Order._meta.db_table}" AS o ON o."id" = c."order_id" '
        f'JOIN "{Shop._meta.db_table}" AS s ON s."id" = o."shop_id" '
        f'JOIN "{User._meta.db_table}" AS b ON b."id" = o."buyer_id" '
        f'LEFT JOIN "{dispute_model._meta.db_table}" AS d ON d."case_id" = c."id" '  # type: ignore[union-attr]
        f'WHERE c."public_id" = %s{visible}',
        params,
        (*shapes, dispute),
        extra=1 if message_count else 0,
    )
    if not rows:
        raise Http404("No such refund case.")
    found, found_order, found_shop, found_buyer, found_dispute, *count = rows[0]
    found_order.shop = found_shop
    found_order.buyer = found_buyer
    found.order = found_order
    to_dispute.set_cached_value(found, found_dispute)  # type: ignore[union-attr]
    if message_count:
        found.message_count = int(count[0])  # type: ignore[attr-defined]
    return found


@functools.cache
def _dispute_shape() -> Shape:
    # The dispute model belongs to the app above: found through the relation, not imported
    # (and only once every app is loaded).
    model = RefundCase._meta.get_field("dispute").related_model
    return Shape(model, "d", ("id", "public_id", "case_id"))  # type: ignore[arg-type]


def refund_items_read(*, case: RefundCase) -> list[RefundItem]:
    """The case's items in the order they were asked for, each with its order line (sku,
    title, quantity bought, unit price): `case.items` with `select_related("order_item")`, in
    one query."""
    item, line = _ITEM_SHAPE, _ITEM_LINE_SHAPE
    rows = select(
        f"SELECT {columns(item, line)} "  # noqa: S608
        f'FROM "{RefundItem._meta.db_table}" AS ri '
        f'JOIN "{OrderItem._meta.db_table}" AS oi ON oi."id" = ri."order_item_id" '
        'WHERE ri."case_id" = %s ORDER BY ri."id"',
        [case.pk],
        (item, line),
    )
    for refund_item, order_line in rows:
        refund_item.order_item = order_line
        refund_item.case = case
    return [refund_item for refund_item, _ in rows]


_ITEM_SHAPE = Shape(RefundItem, "ri", ("id", "case_id", "order_item_id", "quantity"))
_ITEM_LINE_SHAPE = Shape(
    OrderItem, "oi", ("id", "order_id", "sku", "title", "quantity", "unit_price")
)


_PAGE_CASE_SHAPE = Shape(
    RefundCase, "c", tuple(f.attname for f in RefundCase._meta.concrete_fields)
)
_PAGE_ORDER_SHAPE = Shape(Order, "o", tuple(f.attname for f in Order._meta.concrete_fields))


# --- reads of the case page and the order list, in SQL (orders/sql.py says why) -----------------

_PERSON_U = Shape(User, "u", ("id", "email", "name"))  # what `display_name` reads

_TIMELINE_EVENT = (
    "id",
    "order_id",
    "case_id",
    "dispute_id",
    "actor_id",
    "kind",
    "from_state",
    "to_state",
    "note",
    "payload",
    "created_at",
)
_TIMELINE_EVENT_SHAPE = Shape(Event, "e", _TIMELINE_EVENT)


def refund_timeline(*, case: RefundCase) -> list[Event]:
    """The case's audit trail, oldest first, each event with its actor (one query)."""
    return _with_person(
        _TIMELINE_EVENT_SHAPE,
        "actor",
        'e."case_id" = %s ORDER BY e."created_at", e."id"',
        [prep(Event, "case_id", case.public_id)],
        optional=True,
    )


def _with_person(
    shape: Shape, relation: str, where: str, params: list[Any], *, optional: bool = False
) -> list[Any]:
    """Rows of `shape` matching `where`, each with the user its foreign key `relation` names
    attached (`display_name` loaded), in one query; `optional` keeps rows without one."""
    fk = shape.model._meta.get_field(relation)
    join = "LEFT JOIN" if optional else "JOIN"
    rows = select(
        f"SELECT {columns(shape, _PERSON_U)} "  # noqa: S608
        f'FROM "{shape.model._meta.db_table}" AS {shape.alias} '
        f'{join} "{User._meta.db_table}" AS u ON u."id" = {shape.alias}."{fk.column}" '  # type: ignore[union-attr]
        f"WHERE {where}",
        params,
        (shape, _PERSON_U),
    )
    for row, person in rows:
        setattr(row, relation, person)
    return [row for row, _ in rows]


_LISTED_EVIDENCE = (
    "id",
    "public_id",
    "case_id",
    "for_dispute",
    "kind",
    "uploaded_by_id",
    "original_name",
    "content_type",
    "size",
    "created_at",
)
_LISTED_EVIDENCE_SHAPE = Shape(Evidence, "v", _LISTED_EVIDENCE)


def refund_evidence_list(*, case: RefundCase, for_dispute: bool) -> list[Evidence]:
    """`refund_evidence` as the case page lists it: oldest first, each file with its uploader
    (one query; the file itself is not opened)."""
    return _with_person(
        _LISTED_EVIDENCE_SHAPE,
        "uploaded_by",
        'v."case_id" = %s AND v."for_dispute" = %s ORDER BY v."created_at", v."id"',
        [case.pk, for_dispute],
    )


_THREAD_MESSAGE = ("id", "public_id", "order_id", "case_id", "author_id", "body", "created_at")
_THREAD_MESSAGE_SHAPE = Shape(Message, "m", _THREAD_MESSAGE)


def refund_thread(*, case: RefundCase) -> list[Message]:
    """`refund_messages` as the case page shows it: the order's thread, oldest first, each
    message with its author (one query)."""
    return _with_person(
        _THREAD_MESSAGE_SHAPE,
        "author",
        'm."order_id" = %s ORDER BY m."created_at", m."id"',
        [case.order_id],
    )


# What an order card reads of a case: `_order_steps`, `_case_step`, `_can_dispute`,
# `RefundCase.deadline()` and the badge.
_CARD_CASE = (
    "id",
    "public_id",
    "order_id",
    "state",
    "closed_reason",
    "created_at",
    "respond_by",
    "offer_by",
    "return_by",
    "confirm_by",
    "dispute_by",
)
_CARD_CASE_SHAPE = Shape(RefundCase, "c", _CARD_CASE)


def refund_cases_for_orders(*, order_ids: list[int]) -> dict[int, list[RefundCase]]:
    """Each order's cases, newest first, as the order list's cards read them; each case's
    dispute (the reverse one-to-one "dispute" of the app above, named through the model's
    metadata, not imported) is loaded with its public id, or known to be absent."""
    by_order: dict[int, list[RefundCase]] = defaultdict(list)
    if not order_ids:
        return by_order
    to_dispute = RefundCase._meta.get_field("dispute")
    dispute_model = to_dispute.related_model
    case, dispute = _CARD_CASE_SHAPE, _dispute_shape()
    marks = ", ".join(["%s"] * len(order_ids))
    for row_case, row_dispute in select(
        f"SELECT {columns(case, dispute)} "  # noqa: S608
        f'FROM "{RefundCase._meta.db_table}" AS c '
        f'LEFT JOIN "{dispute_model._meta.db_table}" AS d ON d."case_id" = c."id" '  # type: ignore[union-attr]
        f'WHERE c."order_id" IN ({marks}) ORDER BY c."created_at" DESC, c."id" DESC',
        order_ids,
        (case, dispute),
    ):
        to_dispute.set_cached_value(row_case, row_dispute)  # type: ignore[union-attr]
        by_order[row_case.order_id].append(row_case)
    return by_order


def refund_timelines(*, cases: list[RefundCase]) -> dict[uuid.UUID, list[Event]]:
    """The timelines of a page of cases in one query (events point at cases by public id)."""
    by_case: dict[uuid.UUID, list[Event]] = defaultdict(list)
    if not cases:
        return by_case
    events = (
        Event.objects.filter(case_id__in=[c.public_id for c in cases])
        .select_related("actor")
        .order_by("created_at", "id")
    )
    for event in events:
        assert event.case_id is not None
        by_case[event.case_id].append(event)
    return by_case


def refund_messages(*, case: RefundCase) -> QuerySet[Message]:
    """The order's thread: it started before the case and carries on in it (SPEC §2)."""
    return Message.objects.filter(order_id=case.order_id).select_related("author")


def refund_evidence(*, case: RefundCase, for_dispute: bool | None = None) -> QuerySet[Evidence]:
    qs = Evidence.objects.filter(case=case).select_related("uploaded_by")
    if for_dispute is not None:
        qs = qs.filter(for_dispute=for_dispute)
    return qs


def evidence_get_for_user(*, user: Any, evidence_id: Any) -> Evidence:
    """An evidence file of a case the user is the buyer, the seller or staff of; else 404."""
    key = _uuid_or_404(evidence_id, "file")
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such file.")
    qs = Evidence.objects.select_related("case", "case__order", "case__order__shop")
    if not user.is_staff:
        qs = qs.filter(Q(case__order__buyer=user) | Q(case__order__shop__owner=user))
    try:
        return qs.get(public_id=key)
    except Evidence.DoesNotExist as exc:
        raise Http404("No such file.") from exc


def refund_filing_options(*, order: Order, user: User, now: datetime) -> list[dict[str, Any]]:
    """Each reason's filing window as step 2 of the form explains it (SPEC §4).

    `state` is open, not_open or closed; `message` names the date in the marketplace time zone
    and the viewer's own.
    """
    tz = getattr(user, "time_zone", None)
    options: list[dict[str, Any]] = []
    for reason in Reason:
        window = refund_window(order=order, reason=reason.value)
        if window is None:
            options.append(
                {
                    "reason": reason.value,
                    "label": reason.label,
                    "state": "not_open",
                    "opens_at": None,
                    "closes_at": None,
                    "message": "Opens once the order has been delivered.",
                }
            )
            continue
        state = window.state(now)
        if state == "open":
            message = f"Open until {windows.format_both(window.closes_at, tz)}."
        elif state == "not_open":
            message = f"Opens {windows.format_both(window.opens_at, tz)}."
        else:
            message = f"Closed on {windows.format_both(window.closes_at, tz)}."
        options.append(
            {
                "reason": reason.value,
                "label": reason.label,
                "state": state,
                "opens_at": window.opens_at,
                "closes_at": window.closes_at,
                "message": message,
            }
        )
    return options


def refund_filing_open_until(*, order: Order, now: datetime) -> datetime | None:
    """The last moment a refund request can still be filed for some reason, if any window is
    open now: the order list's "Request a refund, until …". The same windows as
    `refund_filing_options`, one per kind of reason (they share it), with no text built."""
    latest: datetime | None = None
    for reason in _ONE_REASON_PER_WINDOW:
        window = refund_window(order=order, reason=reason)
        if window is None or window.state(now) != "open":
            continue
        if latest is None or window.closes_at > latest:
            latest = window.closes_at
    return latest


# Reasons that share a filing window (SPEC §4) need it computed once.
_ONE_REASON_PER_WINDOW = tuple(
    {windows.filing_window_kind(reason.value): reason.value for reason in Reason}.values()
)


def refund_open_case_for_order(*, order: Order) -> RefundCase | None:
    return RefundCase.objects.filter(order=order, state__in=OPEN_STATES).first()
