"""Reads of the refunds app. Every case a user asks for is fetched with the user
(docs/architecture.md, Permissions).

A case the user may not see is simply not found (404): the buyer sees the cases on their
orders, the seller the cases on their shop's orders, staff every case.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from kernel import windows
from orders.models import Event, Message, Order, User

from .models import OPEN_STATES, Evidence, Reason, RefundCase, RefundItem
from .rules import refund_dispute_annotations
from .services import refund_window


def _visible_to(user: Any) -> Q | None:
    """The filter of what `user` may see; None means everything (staff)."""
    if user.is_staff:
        return None
    return Q(order__buyer=user) | Q(order__shop__owner=user)


def _cases_for(user: Any) -> QuerySet[RefundCase]:
    """The cases `user` may see, each with its order, shop and buyer joined, and whether another
    case on its order is open (`refund_open_beside`)."""
    if not getattr(user, "is_authenticated", False):
        return RefundCase.objects.none()
    qs = RefundCase.objects.select_related("order", "order__shop", "order__buyer").annotate(
        **refund_dispute_annotations()
    )
    visible = _visible_to(user)
    return qs if visible is None else qs.filter(visible)


def _items() -> Prefetch:
    # A case's items in the order they were asked for, each with its order line.
    return Prefetch(
        "items", queryset=RefundItem.objects.select_related("order_item").order_by("id")
    )


def _thread_size() -> Coalesce:
    """The size of the case's order thread (the case thread is the order's; docs/rules.md, Messages
    and the invoice), counted in the case's own query: a list costs the same with 1 or 30
    messages."""
    sizes = (
        Message.objects.filter(order=OuterRef("order"))
        .order_by()
        .values("order")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(sizes, output_field=IntegerField()), 0)


def refund_list_for_user(*, user: Any, state: str | None = None) -> QuerySet[RefundCase]:
    """Cases the user may see, newest first, with what the API shows of each already loaded:
    order, shop and buyer joined, the items prefetched (one query for a whole page) and
    `message_count`."""
    qs = _cases_for(user).prefetch_related(_items()).annotate(message_count=_thread_size())
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


def refund_case_read(*, user: Any, public_id: Any, related: Sequence[str] = ()) -> RefundCase:
    """One case with its order, shop and buyer, one query; 404 for a case the user may not see.
    `related` names relations of the apps above to join as well (the portal's and the disputes
    app's `"dispute"`): this app does not name them. Its items are `refund_items`."""
    key = _uuid_or_404(public_id, "refund case")
    try:
        return _cases_for(user).select_related(*related).get(public_id=key)
    except RefundCase.DoesNotExist as exc:
        raise Http404("No such refund case.") from exc


def refund_detail_read(*, user: Any, public_id: Any) -> RefundCase:
    """One case as the API detail shows it: `refund_list_for_user`'s row; 404 for a case the
    user may not see."""
    key = _uuid_or_404(public_id, "refund case")
    try:
        return refund_list_for_user(user=user).get(public_id=key)
    except RefundCase.DoesNotExist as exc:
        raise Http404("No such refund case.") from exc


def refund_items(*, case: RefundCase) -> list[RefundItem]:
    """The case's items in the order they were asked for, each with its order line."""
    return list(case.items.select_related("order_item").order_by("id"))


def refund_timeline(*, case: RefundCase) -> list[Event]:
    """The case's audit trail, oldest first, each event with its actor (one query)."""
    return list(Event.objects.filter(case_id=case.public_id).select_related("actor"))


# What an order card reads of a case: its step, deadline and badge.
def refund_timelines(*, cases: list[RefundCase]) -> dict[uuid.UUID, list[Event]]:
    """The timelines of a page of cases in one query (events point at cases by public id)."""
    by_case: dict[uuid.UUID, list[Event]] = defaultdict(list)
    if not cases:
        return by_case
    events = Event.objects.filter(case_id__in=[c.public_id for c in cases]).select_related("actor")
    for event in events:
        assert event.case_id is not None
        by_case[event.case_id].append(event)
    return by_case


def refund_messages(*, case: RefundCase) -> QuerySet[Message]:
    """The order's thread, oldest first, each message with its author: it started before the
    case and carries on in it (docs/rules.md, Orders)."""
    return Message.objects.filter(order_id=case.order_id).select_related("author")


def refund_evidence(*, case: RefundCase, for_dispute: bool | None = None) -> QuerySet[Evidence]:
    """The case's files, oldest first, each with its uploader (the file is not opened)."""
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
    """Each reason's filing window as step 2 of the form explains it (docs/rules.md, Filing a
    request).

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


# Reasons that share a filing window (docs/rules.md, Filing a request) need it computed once.
_ONE_REASON_PER_WINDOW = tuple(
    {windows.filing_window_kind(reason.value): reason.value for reason in Reason}.values()
)


def refund_open_case_for_order(*, order: Order) -> RefundCase | None:
    return RefundCase.objects.filter(order=order, state__in=OPEN_STATES).first()
