"""Reads of the refunds app. Every case a user asks for is fetched with the user (STYLE §8).

A case the user may not see is simply not found (404): the buyer sees the cases on their
orders, the seller the cases on their shop's orders, staff every case.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
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
from django_fsm import can_proceed

from orders import windows
from orders.models import Event, Message, Order, User

from .models import OPEN_STATES, Evidence, Reason, RefundCase, RefundItem
from .services import DEADLINE_OF_STATE, refund_window


def _visible_to(user: Any) -> Q | None:
    """The filter of what `user` may see; None means everything (staff)."""
    if user.is_staff:
        return None
    return Q(order__buyer=user) | Q(order__shop__owner=user)


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
        f'SELECT COUNT(*) FROM "{Message._meta.db_table}" AS thread_m '  # noqa: S608
        f'WHERE thread_m."{Message._meta.get_field("order").column}" = '
        f'"{RefundCase._meta.db_table}"."{RefundCase._meta.get_field("order").column}"',
        (),
        output_field=IntegerField(),
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


def refund_get_for_user(*, user: Any, public_id: Any, related: tuple[str, ...] = ()) -> RefundCase:
    """`related`: further relations to join in the same query (e.g. the reverse one-to-one
    "dispute" of the app above, which this app names but does not import)."""
    key = _uuid_or_404(public_id, "refund case")
    qs = refund_list_for_user(user=user)
    if related:
        qs = qs.select_related(*related)
    try:
        return qs.get(public_id=key)
    except RefundCase.DoesNotExist as exc:
        raise Http404("No such refund case.") from exc


def refund_role(*, case: RefundCase, user: Any) -> str:
    """The viewer's part in the case: buyer, seller, staff or other."""
    if case.order.buyer_id == user.pk:
        return "buyer"
    if case.order.shop.owner_id == user.pk:
        return "seller"
    return "staff" if user.is_staff else "other"


def refund_timeline(*, case: RefundCase) -> QuerySet[Event]:
    """The case's audit trail, oldest first (one query, actors joined)."""
    return (
        Event.objects.filter(case_id=case.public_id)
        .select_related("actor")
        .order_by("created_at", "id")
    )


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


# --- what the viewer may do now --------------------------------------------------------------


@dataclass(frozen=True)
class CaseAction:
    name: str  # as in the API path: /api/v1/refunds/{id}/{name}/
    party: str  # who may take it
    method: str  # the RefundCase transition it runs (the FSM says from which states)


CASE_ACTIONS: tuple[CaseAction, ...] = (
    CaseAction("accept", "seller", "accept"),
    CaseAction("offer", "seller", "offer"),
    CaseAction("reject", "seller", "reject"),
    CaseAction("confirm-return", "seller", "confirm_return"),
    CaseAction("accept-offer", "buyer", "accept_offer"),
    CaseAction("decline-offer", "buyer", "decline_offer"),
    CaseAction("withdraw", "buyer", "withdraw"),
    CaseAction("ship-return", "buyer", "ship_return"),
    CaseAction("open-dispute", "buyer", "escalate"),
)
ACTION_PARTY: dict[str, str] = {a.name: a.party for a in CASE_ACTIONS}


def _action_deadline(case: RefundCase, action: CaseAction) -> datetime | None:
    if action.method == "escalate":
        return case.dispute_by
    field = DEADLINE_OF_STATE.get(case.state)
    return getattr(case, field) if field else None


def refund_available_actions(*, case: RefundCase, user: Any, now: datetime) -> list[dict[str, Any]]:
    """`[{action, until}]` the viewer may take now; `until` is the deadline that ends it.

    The state machine says which states allow each action; the stored deadline of the state
    says until when (past it only the system transition runs, SPEC §3). No queries.
    """
    role = refund_role(case=case, user=user)
    available: list[dict[str, Any]] = []
    for action in CASE_ACTIONS:
        if action.party != role or not can_proceed(getattr(case, action.method)):
            continue
        until = _action_deadline(case, action)
        if action.method == "escalate" and until is None:
            continue
        if until is not None and now > until:
            continue
        available.append({"action": action.name, "until": until})
    return available


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


def refund_open_case_for_order(*, order: Order) -> RefundCase | None:
    return RefundCase.objects.filter(order=order, state__in=OPEN_STATES).first()
