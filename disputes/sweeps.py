"""SLA flags of disputes (SPEC §3): flag-only sweeps, each dispute flagged once per flag.

Nothing changes state here: the flags put a dispute first in the staff queue and write the
event that tells staff (and, past the hard deadline, the buyer). A flag column set in the same
conditional UPDATE that claims the row makes a second or concurrent run a no-op. On PostgreSQL
each batch is one statement (claim, flag, events) through the engine's SQL path; the Python
builder below is its portable twin, and a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from orders.models import Event, Order, Shop, User
from orders.sweeps import (
    PayloadSql,
    SqlEvents,
    Sweep,
    SweepEvents,
    iso_sql,
    order_payload_sql,
    run_sweep,
)
from refunds.models import RefundCase

from .events import NOTIFY
from .models import UNDECIDED_STATES, Dispute


def dispute_sweeps(now: datetime) -> list[Sweep]:
    undecided = tuple(str(state) for state in UNDECIDED_STATES)
    return [
        # Past is past: `deadline <= now` in the engine, strictly after it here, as a party may
        # still act at the deadline's last microsecond.
        Sweep(
            name="dispute_statement_window",
            model=Dispute,
            states=undecided,
            deadline="statement_by",
            flag="statement_lapsed_at",
            event_kind="dispute.statement_window_lapsed",
            extra_filter=Q(statement_by__lt=now, seller_statement_at__isnull=True),
        ),
        Sweep(
            name="dispute_sla_target",
            model=Dispute,
            states=undecided,
            deadline="decision_target",
            flag="target_flagged_at",
            event_kind="dispute.sla_target_passed",
            extra_filter=Q(decision_target__lt=now),
        ),
        Sweep(
            name="dispute_sla_due",
            model=Dispute,
            states=undecided,
            deadline="decision_due",
            flag="due_flagged_at",
            event_kind="dispute.sla_due_passed",
            extra_filter=Q(decision_due__lt=now),
        ),
    ]


_COLUMNS = (
    "id",
    "public_id",
    "state",
    "desired_amount",
    "statement_by",
    "decision_target",
    "decision_due",
    "info_party",
    "assigned_to__email",
    "case__public_id",
    "case__state",
    "case__order_id",
    "case__order__number",
    "case__order__currency",
    "case__order__shop__name",
    "case__order__payment_method",
    "case__order__card_brand",
    "case__order__card_last4",
    "case__order__buyer_id",
    "case__order__shop__owner_id",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _build_dispute_events(ids: list[int], sweep: Sweep, now: datetime) -> list[Event]:
    """One event per flagged dispute, carrying what its notices need (the outbox row)."""
    roles = NOTIFY[sweep.event_kind]
    events = []
    for row in Dispute.objects.filter(id__in=ids).values(*_COLUMNS).iterator(2000):
        order = Order(
            payment_method=row["case__order__payment_method"],
            card_brand=row["case__order__card_brand"],
            card_last4=row["case__order__card_last4"],
        )
        notify: dict[str, Any] = {}
        if "buyer" in roles:
            notify["buyer"] = row["case__order__buyer_id"]
        if "seller" in roles:
            notify["seller"] = row["case__order__shop__owner_id"]
        if "staff" in roles:
            notify["staff"] = True
        events.append(
            Event(
                order_id=row["case__order_id"],
                case_id=row["case__public_id"],
                dispute_id=row["public_id"],
                actor=None,
                kind=sweep.event_kind,
                from_state=row["state"],
                to_state=row["state"],
                created_at=now,
                payload={
                    "notify": notify,
                    "case_id": str(row["case__public_id"]),
                    "dispute_id": str(row["public_id"]),
                    "order_number": row["case__order__number"],
                    "currency": row["case__order__currency"],
                    "shop": row["case__order__shop__name"],
                    "payment_method_label": order.payment_method_label,
                    "case_state": row["case__state"],
                    "desired_amount": str(row["desired_amount"]),
                    "statement_by": _iso(row["statement_by"]),
                    "decision_target": _iso(row["decision_target"]),
                    "decision_due": _iso(row["decision_due"]),
                    "info_party": row["info_party"] or None,
                    "assigned_to": row["assigned_to__email"],
                },
            )
        )
    return events


_DEADLINES = ("statement_by", "decision_target", "decision_due")


def _dispute_payload_sql(sweep: Sweep) -> PayloadSql:
    """The SQL twin of the payload above, over the flagged dispute `m` and its case `c`."""
    return [
        *order_payload_sql(NOTIFY[sweep.event_kind]),
        ("case_id", "c.public_id::text", []),
        ("dispute_id", "m.public_id::text", []),
        ("case_state", "c.state", []),
        # numeric::text keeps the column's scale, as str(Decimal) of the fetched value does.
        ("desired_amount", "m.desired_amount::text", []),
        *[(name, iso_sql(f"m.{name}"), []) for name in _DEADLINES],
        ("info_party", "NULLIF(m.info_party, '')", []),
        ("assigned_to", "u.email", []),
    ]


# The case, then the order and its shop under the aliases `order_payload_sql` reads (o, s),
# and the assignee.
_DISPUTE_JOINS = (
    f"JOIN {RefundCase._meta.db_table} AS c ON c.id = m.case_id "
    f"JOIN {Order._meta.db_table} AS o ON o.id = c.order_id "
    f"JOIN {Shop._meta.db_table} AS s ON s.id = o.shop_id "
    f"LEFT JOIN {User._meta.db_table} AS u ON u.id = m.assigned_to_id"
)

build_dispute_events = SweepEvents(
    build=_build_dispute_events,
    sql=SqlEvents(
        returning=(
            "case_id",
            "public_id",
            "desired_amount",
            "info_party",
            "assigned_to_id",
            *_DEADLINES,
        ),
        joins=_DISPUTE_JOINS,
        order_id="c.order_id",
        case_id="c.public_id",
        dispute_id="m.public_id",
        from_state="m.state",
        payload=_dispute_payload_sql,
    ),
)


def dispute_sweeps_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int]:
    """One pass of every dispute clock; returns how many disputes each flag caught."""
    return {
        sweep.name: len(
            run_sweep(sweep, now=now, build_events=build_dispute_events, batch_size=batch_size)
        )
        for sweep in dispute_sweeps(now)
    }
