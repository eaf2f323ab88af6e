"""The refund case's rules, each once: the viewer's role, which actions a party has, whether a
case can be disputed, and what an open case holds back on its order.

As in `orders.rules`, a `…_refusal` answers `None` or the domain error the service raises; the
API's `actions`, the case page's buttons and the admin read the same answer (docs/rules.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from django.db.models import Exists, OuterRef, Subquery
from django.utils.module_loading import import_string
from django_fsm import can_proceed

from kernel import windows
from kernel.errors import DomainError, InvalidTransition, NotAllowed, WindowClosed
from orders.models import User
from orders.rules import Role, author_role, order_role
from payouts.rules import CHARGEBACK_HOLDS, chargeback_open_for

from .models import OPEN_STATES, RefundCase, State

if TYPE_CHECKING:
    from rest_framework.serializers import Serializer

OPEN_CASE_HOLDS_CANCEL = (
    "This order has an open refund case; withdraw or finish it before cancelling."
)


def refund_open_case_holds(order_ids: list[int]) -> dict[int, str]:
    """Registered in `orders.hooks.cancel_holds`: an order with an open case is settled
    through the case, not cancelled beside it."""
    held = RefundCase.objects.filter(order_id__in=order_ids, state__in=OPEN_STATES)
    return dict.fromkeys(held.values_list("order_id", flat=True), OPEN_CASE_HOLDS_CANCEL)


def refund_cancel_holds_of(*, cases: Iterable[RefundCase]) -> dict[int, str]:
    """The same holds, read from cases a page has already loaded (no query)."""
    return {c.order_id: OPEN_CASE_HOLDS_CANCEL for c in cases if c.state in OPEN_STATES}


def refund_role(*, case: RefundCase, user: User) -> Role:
    """The viewer's part in the case: its order's."""
    return order_role(order=case.order, user=user)


def refund_author_role(author_id: Any, case: RefundCase) -> Literal["buyer", "seller", "staff"]:
    """Who wrote, acted or uploaded on the case: buyer, seller, or else staff."""
    return author_role(order=case.order, author_id=author_id)


def _fmt(instant: datetime, user: User | None) -> str:
    return windows.format_both(instant, user.time_zone if user else None)


# --- the actions of the parties ---------------------------------------------------------------


@dataclass(frozen=True)
class CaseAction:
    """A party's action on a case, declared once: the API view, the case page and both URL
    confs read it (docs/architecture.md). The service and the API's input serializer are named by
    dotted path because they sit above this module (services ask these rules); a test resolves
    every one."""

    name: str  # the path segment: /api/v1/refunds/{id}/{name}/ and /refunds/{id}/{name}/
    party: str  # who may take it
    method: str  # the RefundCase transition it runs (the FSM says from which states)
    service: str = ""  # "" for an action served elsewhere (opening a dispute: disputes)
    serializer: str = ""  # the API's input, "" when the action takes none
    summary: str = ""  # what the API schema says of it
    message: str = ""  # what the page says once it is done

    @property
    def routed(self) -> bool:
        """Whether the refunds API and the case page serve it at its own path."""
        return bool(self.service)

    def run(self, **kwargs: Any) -> RefundCase:
        service: Callable[..., RefundCase] = import_string(self.service)
        return service(**kwargs)

    def input_serializer(self) -> type[Serializer] | None:
        return import_string(self.serializer) if self.serializer else None


_S = "refunds.services."
_IN = "refunds.serializers."
CASE_ACTIONS: tuple[CaseAction, ...] = (
    CaseAction(
        "accept",
        "seller",
        "accept",
        _S + "refund_accept",
        summary="Seller accepts the request (a return is asked for when needed)",
        message="Request accepted.",
    ),
    CaseAction(
        "offer",
        "seller",
        "offer",
        _S + "refund_offer",
        _IN + "RefundOfferIn",
        summary="Seller offers a partial refund; the buyer has 48 h to answer",
        message="Offer sent to the buyer.",
    ),
    CaseAction(
        "reject",
        "seller",
        "reject",
        _S + "refund_reject",
        _IN + "RefundRejectIn",
        summary="Seller rejects the request (the buyer may then dispute)",
        message="Request rejected.",
    ),
    CaseAction(
        "confirm-return",
        "seller",
        "confirm_return",
        _S + "refund_confirm_return",
        summary="Seller confirms the returned item arrived; the refund is paid",
        message="Return confirmed; the refund is being paid.",
    ),
    CaseAction(
        "accept-offer",
        "buyer",
        "accept_offer",
        _S + "refund_accept_offer",
        summary="Buyer takes the seller's partial offer",
        message="Offer accepted; the refund is being paid.",
    ),
    CaseAction(
        "decline-offer",
        "buyer",
        "decline_offer",
        _S + "refund_decline_offer",
        summary="Buyer declines the offer (the case closes; it may be disputed)",
        message="Offer declined.",
    ),
    CaseAction(
        "withdraw",
        "buyer",
        "withdraw",
        _S + "refund_withdraw",
        summary="Buyer withdraws the request",
        message="Refund request withdrawn.",
    ),
    CaseAction(
        "ship-return",
        "buyer",
        "ship_return",
        _S + "refund_ship_return",
        _IN + "RefundShipReturnIn",
        summary="Buyer enters the return's carrier and tracking number",
        message="Tracking number saved. The seller has been told the return is on its way.",
    ),
    CaseAction("open-dispute", "buyer", "escalate"),  # disputes.services.dispute_open
)
ROUTED_CASE_ACTIONS: tuple[CaseAction, ...] = tuple(a for a in CASE_ACTIONS if a.routed)
ACTION_OF_METHOD: dict[str, CaseAction] = {a.method: a for a in CASE_ACTIONS}
ACTION_OF_NAME: dict[str, CaseAction] = {a.name: a for a in CASE_ACTIONS}


def refund_party_refusal(*, case: RefundCase, user: User, party: str) -> DomainError | None:
    """Who may act is answered before what they sent is judged: a wrong party hears 403, not a
    400 about a body they should never have sent."""
    if refund_role(case=case, user=user) != party:
        return NotAllowed(f"Only the {party} can do that on this case.")
    return None


def refund_deadline(*, case: RefundCase) -> datetime | None:
    """The stored deadline of the case's state (`RefundCase.deadline`), which ends the parties'
    actions in it: past it only the system transition runs, even before the sweep did."""
    running = case.deadline()
    return running[1] if running else None


def refund_action_refusal(
    *, case: RefundCase, user: User, action: CaseAction, now: datetime
) -> DomainError | None:
    """May `user` take `action` on the case now: their party's, allowed by the state machine
    from this state, and before the state's deadline."""
    if (refusal := refund_party_refusal(case=case, user=user, party=action.party)) is not None:
        return refusal
    if action.method == "escalate":
        return refund_dispute_refusal(case=case, user=user, now=now)
    if not can_proceed(getattr(case, action.method)):
        return InvalidTransition(
            f"This case is {case.get_state_display().lower()}; that action is not possible now."
        )
    deadline = refund_deadline(case=case)
    if deadline is not None and now > deadline:
        return InvalidTransition(
            f"The deadline of this step passed on {_fmt(deadline, user)}; "
            "the case moves on automatically."
        )
    return None


def refund_actions(*, case: RefundCase, user: User, now: datetime) -> list[dict[str, Any]]:
    """`[{action, until}]` the viewer may take now: every action the rule does not refuse, with
    the deadline that ends it. No queries."""
    until = refund_deadline(case=case)
    return [
        {"action": action.name, "until": until}
        for action in CASE_ACTIONS
        if refund_action_refusal(case=case, user=user, action=action, now=now) is None
    ]


# --- disputes -----------------------------------------------------------------------------------


OPEN_BESIDE = "open_beside"  # the annotation `refund_open_beside` reads
CHARGEBACK_OPEN = "chargeback_open"  # the annotation `refund_chargeback_open` reads
_UNKNOWN = object()


def refund_dispute_annotations() -> dict[str, Any]:
    """`.annotate(**refund_dispute_annotations())` on a queryset of cases: what
    `refund_dispute_refusal` needs beyond the case's own row, in the cases' own query (a page of
    cases asks it without a query per case): the state of another open case on the same order,
    if any, and whether the order's payment is in an open chargeback."""
    beside = RefundCase.objects.filter(
        order_id=OuterRef("order_id"), state__in=OPEN_STATES
    ).exclude(pk=OuterRef("pk"))
    return {
        OPEN_BESIDE: Subquery(beside.values("state")[:1]),
        CHARGEBACK_OPEN: Exists(chargeback_open_for(OuterRef("order_id"))),
    }


def refund_open_beside(*, case: RefundCase) -> str | None:
    """The state of another open case on the case's order, or None: the database holds one
    open case per order (`one_open_case_per_order`), so while it is open this one cannot be
    escalated. Read from the selectors' annotation, else asked once and kept on the case."""
    known = getattr(case, OPEN_BESIDE, _UNKNOWN)
    if known is _UNKNOWN:
        beside = RefundCase.objects.filter(order_id=case.order_id, state__in=OPEN_STATES)
        known = beside.exclude(pk=case.pk).values_list("state", flat=True).first()
        setattr(case, OPEN_BESIDE, known)
    return cast(str | None, known)


def refund_chargeback_open(*, case: RefundCase) -> bool:
    """Whether the case's order is in an open chargeback (docs/rules.md, Chargebacks): read
    from the selectors' annotation, else asked once and kept on the case."""
    known = getattr(case, CHARGEBACK_OPEN, _UNKNOWN)
    if known is _UNKNOWN:
        known = chargeback_open_for(case.order_id).exists()
        setattr(case, CHARGEBACK_OPEN, known)
    return bool(known)


def refund_dispute_refusal(*, case: RefundCase, user: User, now: datetime) -> DomainError | None:
    """Only the buyer disputes, only a case closed as rejected, withdrawn, expired or with a
    declined offer, only until its `dispute_by`, and only while no other case on the order is
    open (a newer request, or a dispute on another case) and no chargeback holds the order."""
    if case.order.buyer_id != user.pk:
        return NotAllowed("Only the buyer of this order can open a dispute.")
    if not can_proceed(case.escalate):  # closed, for one of the reasons its condition names
        return InvalidTransition(
            "A dispute can be opened once a refund request is rejected, withdrawn, expired "
            f"or ends with a declined offer. This one is {case.get_state_display().lower()}."
        )
    if case.dispute_by is None or now > case.dispute_by:
        closed = _fmt(case.dispute_by, user) if case.dispute_by else "when the case closed"
        return WindowClosed(f"The dispute window for this case closed on {closed}.")
    if (beside := refund_open_beside(case=case)) is not None:
        until = _fmt(case.dispute_by, user)
        if beside == State.ESCALATED:
            return InvalidTransition(
                "Another refund case on this order is in dispute; this one can be disputed "
                f"once that dispute is decided, until {until}."
            )
        return InvalidTransition(
            "A newer refund request on this order is open; this case can be disputed once "
            f"that request is finished or withdrawn, until {until}."
        )
    if refund_chargeback_open(case=case):
        # The bank is already deciding about the same money (docs/rules.md, Chargebacks).
        return InvalidTransition(CHARGEBACK_HOLDS)
    return None
