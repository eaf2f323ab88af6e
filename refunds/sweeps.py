"""System transitions of refund cases: every window of SPEC §3 that ends a refund step.

The next clock starts at the deadline, not when the sweep runs (SPEC §3): a lapsed offer is
closed *at* `offer_by`, so its dispute window runs from `offer_by`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import DateTimeField, ExpressionWrapper, F, Q

from orders import windows
from orders.events import recipients
from orders.models import Event, Order
from orders.sweeps import Sweep, run_sweep

from .events import NOTIFY
from .models import DISPUTABLE_REASONS, ClosedReason, RefundCase, State


def _plus(field: str, window_name: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(field) + windows.window(window_name),
                             output_field=DateTimeField())


def _auto_accept_groups(rows: list[dict[str, Any]]) -> Iterable[tuple[list[int], dict[str, Any]]]:
    pay_now = [r["id"] for r in rows if not r["return_item"]]
    yield pay_now, {
        "state": State.REFUND_PENDING, "auto_accepted": True, "approved_amount": F("amount"),
        "approved_at": F("respond_by"),
    }
    # Calendar-day deadlines come from the windows module; rows share a few local dates.
    by_return_by: dict[datetime, list[int]] = defaultdict(list)
    for r in rows:
        if r["return_item"]:
            by_return_by[windows.return_by(rma_issued_at=r["respond_by"])].append(r["id"])
    for return_by, ids in by_return_by.items():
        yield ids, {
            "state": State.AWAITING_RETURN, "auto_accepted": True,
            "approved_amount": F("amount"), "rma_issued_at": F("respond_by"),
            "return_by": return_by,
        }


def _closing(deadline: str, reason: str):  # type: ignore[no-untyped-def]
    def group(rows: list[dict[str, Any]]) -> Iterable[tuple[list[int], dict[str, Any]]]:
        yield [r["id"] for r in rows], {
            "state": State.CLOSED, "closed_reason": reason, "closed_at": F(deadline),
            "dispute_by": _plus(deadline, "dispute_filing"),
        }
    return group


def _to_refund_pending(deadline: str):  # type: ignore[no-untyped-def]
    def group(rows: list[dict[str, Any]]) -> Iterable[tuple[list[int], dict[str, Any]]]:
        yield [r["id"] for r in rows], {"state": State.REFUND_PENDING, "approved_at": F(deadline)}
    return group


def transition_sweeps() -> list[Sweep]:
    return [
        Sweep(name="auto_accept", model=RefundCase, method="auto_accept", deadline="respond_by",
              event_kind="refund.auto_accepted", group=_auto_accept_groups,
              extra_columns=("return_item",)),
        Sweep(name="offer_lapse", model=RefundCase, method="lapse_offer", deadline="offer_by",
              event_kind="refund.offer_lapsed",
              group=_closing("offer_by", ClosedReason.OFFER_DECLINED)),
        Sweep(name="return_expiry", model=RefundCase, method="expire_return",
              deadline="return_by", event_kind="refund.return_expired",
              group=_closing("return_by", ClosedReason.EXPIRED)),
        Sweep(name="auto_confirm", model=RefundCase, method="auto_confirm_return",
              deadline="confirm_by", event_kind="refund.return_auto_confirmed",
              group=_to_refund_pending("confirm_by")),
    ]


def reminder_sweeps(now: datetime) -> list[Sweep]:
    return [
        Sweep(name="remind_seller_response", model=RefundCase, states=(State.REQUESTED,),
              deadline="respond_by", lead=windows.window("seller_response_reminder"),
              flag="respond_reminded_at", event_kind="reminder.seller_response",
              extra_filter=Q(respond_by__gt=now)),
        Sweep(name="remind_return_shipping", model=RefundCase, states=(State.AWAITING_RETURN,),
              deadline="return_by", lead=windows.window("return_shipping_reminder"),
              flag="return_reminded_at", event_kind="reminder.return_shipping",
              extra_filter=Q(return_by__gt=now)),
        Sweep(name="remind_dispute_window", model=RefundCase, states=(State.CLOSED,),
              deadline="dispute_by", lead=windows.window("dispute_filing_reminder"),
              flag="dispute_reminded_at", event_kind="reminder.dispute_window",
              extra_filter=Q(dispute_by__gt=now, closed_reason__in=DISPUTABLE_REASONS)),
    ]


_CASE_COLUMNS = (
    "id", "public_id", "order_id", "state", "reason", "amount", "approved_amount", "offer_amount",
    "return_number", "rma_issued_at", "closed_reason", "respond_by", "offer_by", "return_by",
    "confirm_by", "dispute_by", "order__number", "order__currency", "order__shop__name",
    "order__payment_method", "order__card_brand", "order__card_last4", "order__buyer_id",
    "order__shop__owner_id",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_case_events(ids: list[int], sweep: Sweep, now: datetime) -> list[Event]:
    """One event per moved case, carrying what its notices need (the outbox row)."""
    events = []
    roles = NOTIFY[sweep.event_kind]
    from_states = sweep.sources()
    for row in RefundCase.objects.filter(id__in=ids).values(*_CASE_COLUMNS).iterator(2000):
        order = Order(payment_method=row["order__payment_method"],
                      card_brand=row["order__card_brand"], card_last4=row["order__card_last4"])
        notify: dict[str, Any] = {}
        if "buyer" in roles:
            notify["buyer"] = row["order__buyer_id"]
        if "seller" in roles:
            notify["seller"] = row["order__shop__owner_id"]
        if "staff" in roles:
            notify.update(recipients(order, "staff"))
        events.append(Event(
            order_id=row["order_id"], case_id=row["public_id"], actor=None,
            kind=sweep.event_kind, from_state=from_states[0] if len(from_states) == 1 else "",
            to_state=row["state"], created_at=now,
            payload={
                "notify": notify,
                "order_number": row["order__number"],
                "currency": row["order__currency"],
                "shop": row["order__shop__name"],
                "payment_method_label": order.payment_method_label,
                "case_id": str(row["public_id"]),
                "reason": row["reason"],
                "amount": str(row["amount"]),
                "approved_amount": None if row["approved_amount"] is None
                else str(row["approved_amount"]),
                "offer_amount": None if row["offer_amount"] is None else str(row["offer_amount"]),
                "return_number": row["return_number"] if row["rma_issued_at"] else None,
                "closed_reason": row["closed_reason"] or None,
                "respond_by": _iso(row["respond_by"]),
                "offer_by": _iso(row["offer_by"]),
                "return_by": _iso(row["return_by"]),
                "confirm_by": _iso(row["confirm_by"]),
                "dispute_by": _iso(row["dispute_by"]),
            },
        ))
    return events


def refund_sweeps_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int]:
    """One pass of every refund window; payouts for newly approved cases are queued after."""
    from .tasks import refund_payouts_start

    moved: dict[str, int] = {}
    to_pay: list[int] = []
    for sweep in transition_sweeps():
        ids = run_sweep(sweep, now=now, build_events=build_case_events, batch_size=batch_size)
        moved[sweep.name] = len(ids)
        if sweep.name in {"auto_accept", "auto_confirm"} and ids:
            to_pay.extend(
                RefundCase.objects.filter(id__in=ids, state=State.REFUND_PENDING)
                .values_list("id", flat=True)
            )
    for sweep in reminder_sweeps(now):
        moved[sweep.name] = len(
            run_sweep(sweep, now=now, build_events=build_case_events, batch_size=batch_size)
        )
    for start in range(0, len(to_pay), 500):
        refund_payouts_start.delay(to_pay[start:start + 500])
    return moved
