"""One function per kind of audit event; the payload is what its notices need (docs/architecture.md,
Dependency direction; The event table)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from . import hooks
from .models import Event, Order, User

# The fields of an order `recipients` and `order_payload` read. A sweep fetches thousands of
# rows with only these (`Sweep.reads`); a field read but not listed would cost a query per row,
# which the sweep tests' query counts catch.
ORDER_PAYLOAD_READS = (
    "number",
    "currency",
    "payment_method",
    "card_brand",
    "card_last4",
    "buyer",
    "shop__name",
    "shop__owner",
)


def recipients(order: Order, *roles: str) -> dict[str, Any]:
    """Who a notice goes to: the order's buyer and/or seller by id, and/or staff."""
    notify: dict[str, Any] = {}
    if "buyer" in roles:
        notify["buyer"] = order.buyer_id
    if "seller" in roles:
        notify["seller"] = order.shop.owner_id
    if "staff" in roles:
        notify["staff"] = True
    return notify


def order_payload(order: Order, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "order_number": order.number,
        "currency": order.currency,
        "shop": order.shop.name,
        "payment_method_label": order.payment_method_label,
    }
    for key, value in extra.items():
        if isinstance(value, datetime):
            payload[key] = value.isoformat()
        elif isinstance(value, UUID):
            payload[key] = str(value)
        elif value is not None:
            payload[key] = (
                value if isinstance(value, str | int | bool | dict | list) else str(value)
            )
    return payload


def event_build(
    *,
    order: Order,
    kind: str,
    actor: User | None,
    from_state: str = "",
    to_state: str = "",
    note: str = "",
    notify: tuple[str, ...] = (),
    case_id: UUID | None = None,
    dispute_id: UUID | None = None,
    at: datetime | None = None,
    **payload: Any,
) -> Event:
    """An audit event, unsaved: services save theirs one at a time (`event_save`), sweeps
    write theirs in bulk, so both build it here."""
    return Event(
        order=order,
        kind=kind,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        note=note,
        case_id=case_id,
        dispute_id=dispute_id,
        created_at=at or timezone.now(),
        payload={
            "notify": recipients(order, *notify),
            **({"case_id": str(case_id)} if case_id else {}),
            **({"dispute_id": str(dispute_id)} if dispute_id else {}),
            **order_payload(order, **payload),
        },
    )


def event_save(event: Event) -> Event:
    event.save()
    events_written_on_commit()
    return event


def event_record(**fields: Any) -> Event:
    """`event_build` with these fields, saved."""
    return event_save(event_build(**fields))


def _announce_events_written() -> None:
    for hook in hooks.events_written:
        hook()


def events_written_on_commit() -> None:
    """Run `hooks.events_written` once after the current transaction commits.

    Once per transaction, not per event: a transition writing three events queues one dispatch.
    An announcement already registered is reused only if it was registered under savepoints that
    are all still open here, i.e. it runs whenever this event commits; a rolled-back savepoint
    drops its own callbacks, so no stale "already announced" flag can swallow a later event.
    Robust: a failing hook is logged and never turns a committed transition into an error.
    Outside a transaction `on_commit` runs the hooks at once.
    """
    connection = transaction.get_connection()
    open_savepoints = set(connection.savepoint_ids)
    if any(
        func is _announce_events_written and sids <= open_savepoints
        for sids, func, _robust in connection.run_on_commit
    ):
        return
    transaction.on_commit(_announce_events_written, robust=True)


def events_save(events: list[Event]) -> list[Event]:
    """Events built by the event functions, written in one statement (a batch ingest or a
    sweep), announced once like `event_save`."""
    if events:
        Event.objects.bulk_create(events, batch_size=2000)
        events_written_on_commit()
    return events


def order_received_event(*, order: Order, actor: User | None) -> Event:
    """The order's arrival, unsaved: one order saves its own, a batch writes them in bulk."""
    return event_build(order=order, kind="order.received", actor=actor, to_state=order.status)


def event_order_received(*, order: Order, actor: User | None) -> Event:
    return event_save(order_received_event(order=order, actor=actor))


def event_order_shipped(*, order: Order, actor: User | None) -> Event:
    return event_record(
        order=order,
        kind="order.shipped",
        actor=actor,
        from_state="paid",
        to_state="shipped",
        carrier=order.carrier,
        tracking_number=order.tracking_number,
    )


def event_order_delivered(*, order: Order, actor: User | None, from_state: str) -> Event:
    return event_record(
        order=order,
        kind="order.delivered",
        actor=actor,
        from_state=from_state,
        to_state="delivered",
    )


def event_message_posted(
    *, order: Order, actor: User, notify_role: str, case_id: UUID | None = None, excerpt: str = ""
) -> Event:
    return event_record(
        order=order,
        kind="message.posted",
        actor=actor,
        notify=(notify_role,),
        case_id=case_id,
        excerpt=excerpt[:200],
    )
