"""System transitions of refund cases: every window of SPEC §3 that ends a refund step.

The next clock starts at the deadline, not when the sweep runs (SPEC §3): a lapsed offer is
closed *at* `offer_by`, so its dispute window runs from `offer_by`.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

from django.db.models import F, Q
from kombu.exceptions import OperationalError as BrokerError

from orders import windows
from orders.events import recipients
from orders.models import Event, Order
from orders.sweeps import (
    ORDER_JOINS,
    Outcome,
    PayloadSql,
    PerLocalDay,
    Shifted,
    SqlEvents,
    Sweep,
    SweepEvents,
    iso_sql,
    iter_sweep,
    order_payload_sql,
    run_sweep,
    sweep_moves,
)

from .events import NOTIFY
from .models import DISPUTABLE_REASONS, ClosedReason, Reason, RefundCase, State

log = logging.getLogger(__name__)


def _return_by(rma_issued_at: datetime) -> datetime:
    return windows.return_by(rma_issued_at=rma_issued_at)


# What each system transition sets: the same fields as the @transition methods of RefundCase
# (auto_accept, lapse_offer, expire_return, auto_confirm_return), and the next clock starts at
# the deadline, not when the sweep runs.
_AUTO_ACCEPT = (
    Outcome(
        when={"return_item": True},
        values={
            "state": State.AWAITING_RETURN,
            "auto_accepted": True,
            "approved_amount": F("amount"),
            "rma_issued_at": F("respond_by"),
            # 7 calendar days in the marketplace zone: computed by orders.windows per local date.
            "return_by": PerLocalDay("respond_by", _return_by),
        },
    ),
    Outcome(
        values={
            "state": State.REFUND_PENDING,
            "auto_accepted": True,
            "approved_amount": F("amount"),
            "approved_at": F("respond_by"),
        }
    ),
)


def _closing(deadline: str, reason: str) -> tuple[Outcome, ...]:
    return (
        Outcome(
            values={
                "state": State.CLOSED,
                "closed_reason": reason,
                "closed_at": F(deadline),
                "dispute_by": Shifted(deadline, "dispute_filing"),
            }
        ),
    )


def transition_sweeps() -> list[Sweep]:
    return [
        Sweep(
            name="auto_accept",
            model=RefundCase,
            method="auto_accept",
            deadline="respond_by",
            event_kind="refund.auto_accepted",
            outcomes=_AUTO_ACCEPT,
        ),
        Sweep(
            name="offer_lapse",
            model=RefundCase,
            method="lapse_offer",
            deadline="offer_by",
            event_kind="refund.offer_lapsed",
            outcomes=_closing("offer_by", ClosedReason.OFFER_DECLINED),
        ),
        Sweep(
            name="return_expiry",
            model=RefundCase,
            method="expire_return",
            deadline="return_by",
            event_kind="refund.return_expired",
            outcomes=_closing("return_by", ClosedReason.EXPIRED),
        ),
        Sweep(
            name="auto_confirm",
            model=RefundCase,
            method="auto_confirm_return",
            deadline="confirm_by",
            event_kind="refund.return_auto_confirmed",
            outcomes=(
                Outcome(values={"state": State.REFUND_PENDING, "approved_at": F("confirm_by")}),
            ),
        ),
    ]


def reminder_sweeps(now: datetime) -> list[Sweep]:
    return [
        Sweep(
            name="remind_seller_response",
            model=RefundCase,
            states=(State.REQUESTED,),
            deadline="respond_by",
            lead=windows.window("seller_response_reminder"),
            flag="respond_reminded_at",
            event_kind="reminder.seller_response",
            extra_filter=Q(respond_by__gt=now),
        ),
        Sweep(
            name="remind_return_shipping",
            model=RefundCase,
            states=(State.AWAITING_RETURN,),
            deadline="return_by",
            lead=windows.window("return_shipping_reminder"),
            flag="return_reminded_at",
            event_kind="reminder.return_shipping",
            extra_filter=Q(return_by__gt=now),
        ),
        Sweep(
            name="remind_dispute_window",
            model=RefundCase,
            states=(State.CLOSED,),
            deadline="dispute_by",
            lead=windows.window("dispute_filing_reminder"),
            flag="dispute_reminded_at",
            event_kind="reminder.dispute_window",
            extra_filter=Q(dispute_by__gt=now, closed_reason__in=DISPUTABLE_REASONS),
        ),
    ]


_CASE_COLUMNS = (
    "id",
    "public_id",
    "order_id",
    "state",
    "reason",
    "amount",
    "approved_amount",
    "offer_amount",
    "return_number",
    "rma_issued_at",
    "closed_reason",
    "respond_by",
    "offer_by",
    "return_by",
    "confirm_by",
    "dispute_by",
    "order__number",
    "order__currency",
    "order__shop__name",
    "order__payment_method",
    "order__card_brand",
    "order__card_last4",
    "order__buyer_id",
    "order__shop__owner_id",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _build_case_events(ids: list[int], sweep: Sweep, now: datetime) -> list[Event]:
    """One event per moved case, carrying what its notices need (the outbox row)."""
    events = []
    roles = NOTIFY[sweep.event_kind]
    from_state = sweep.from_state()
    for row in RefundCase.objects.filter(id__in=ids).values(*_CASE_COLUMNS).iterator(2000):
        order = Order(
            payment_method=row["order__payment_method"],
            card_brand=row["order__card_brand"],
            card_last4=row["order__card_last4"],
        )
        notify: dict[str, Any] = {}
        if "buyer" in roles:
            notify["buyer"] = row["order__buyer_id"]
        if "seller" in roles:
            notify["seller"] = row["order__shop__owner_id"]
        if "staff" in roles:
            notify.update(recipients(order, "staff"))
        events.append(
            Event(
                order_id=row["order_id"],
                case_id=row["public_id"],
                actor=None,
                kind=sweep.event_kind,
                from_state=from_state,
                to_state=row["state"],
                created_at=now,
                payload={
                    "notify": notify,
                    "order_number": row["order__number"],
                    "currency": row["order__currency"],
                    "shop": row["order__shop__name"],
                    "payment_method_label": order.payment_method_label,
                    "case_id": str(row["public_id"]),
                    "reason": row["reason"],
                    "reason_label": Reason(row["reason"]).label,
                    "amount": str(row["amount"]),
                    "approved_amount": None
                    if row["approved_amount"] is None
                    else str(row["approved_amount"]),
                    "offer_amount": None
                    if row["offer_amount"] is None
                    else str(row["offer_amount"]),
                    "return_number": row["return_number"] if row["rma_issued_at"] else None,
                    "closed_reason": row["closed_reason"] or None,
                    "closed_reason_label": ClosedReason(row["closed_reason"]).label
                    if row["closed_reason"]
                    else None,
                    "respond_by": _iso(row["respond_by"]),
                    "offer_by": _iso(row["offer_by"]),
                    "return_by": _iso(row["return_by"]),
                    "confirm_by": _iso(row["confirm_by"]),
                    "dispute_by": _iso(row["dispute_by"]),
                },
            )
        )
    return events


_DEADLINES = ("respond_by", "offer_by", "return_by", "confirm_by", "dispute_by")


def _label_sql(key: str, column: str, choices: list[tuple[str, str]]) -> Any:
    """The SQL twin of `get_FOO_display()`: the label of the code in `column` (NULL if none)."""
    whens = " ".join("WHEN %s THEN %s" for _ in choices)
    return (key, f"CASE {column} {whens} END", [str(v) for choice in choices for v in choice])


def _case_payload_sql(sweep: Sweep) -> PayloadSql:
    """The SQL twin of the payload above, over the moved case `m` (same keys, same strings)."""
    return [
        *order_payload_sql(NOTIFY[sweep.event_kind]),
        ("case_id", "m.public_id::text", []),
        ("reason", "m.reason", []),
        _label_sql("reason_label", "m.reason", Reason.choices),
        # numeric::text keeps the column's scale, as str(Decimal) of the fetched value does.
        ("amount", "m.amount::text", []),
        ("approved_amount", "m.approved_amount::text", []),
        ("offer_amount", "m.offer_amount::text", []),
        ("return_number", "CASE WHEN m.rma_issued_at IS NOT NULL THEN m.return_number END", []),
        ("closed_reason", "NULLIF(m.closed_reason, '')", []),
        _label_sql("closed_reason_label", "m.closed_reason", ClosedReason.choices),
        *[(name, iso_sql(f"m.{name}"), []) for name in _DEADLINES],
    ]


build_case_events = SweepEvents(
    build=_build_case_events,
    sql=SqlEvents(
        returning=(
            "order_id",
            "public_id",
            "reason",
            "amount",
            "approved_amount",
            "offer_amount",
            "return_number",
            "rma_issued_at",
            "closed_reason",
            *_DEADLINES,
        ),
        joins=ORDER_JOINS,
        order_id="m.order_id",
        case_id="m.public_id",
        payload=_case_payload_sql,
    ),
)


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
        for batch in iter_sweep(
            sweep, now=now, build_events=build_case_events, batch_size=batch_size
        ):
            moved[sweep.name] += len(batch)
            # An auto-accept that needs the item back waits for it; the rest are paid now.
            payouts.add([pk for pk, state in batch if state == State.REFUND_PENDING])
    for sweep in reminder_sweeps(now):
        moved[sweep.name] = len(
            run_sweep(sweep, now=now, build_events=build_case_events, batch_size=batch_size)
        )
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
        moves = sweep_moves(
            dataclasses.replace(sweep, extra_filter=only_these),
            now=now,
            build_events=build_case_events,
            portable=True,  # the extra filter is applied by the ORM path
        )
        moved[sweep.name] = len(moves)
        payouts.add([pk for pk, state in moves if state == State.REFUND_PENDING])
    payouts.close()
    return moved
