"""The refund case's rules, each once: the viewer's role, which actions a party has, whether a
case can be disputed, and what an open case holds back on its order.

As in `orders.rules`, a `…_refusal` answers `None` or the domain error the service raises; the
API's `actions`, the case page's buttons and the admin read the same answer (docs/rules.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django_fsm import can_proceed

from kernel import windows
from kernel.errors import DomainError, InvalidTransition, NotAllowed, WindowClosed
from orders.models import User
from orders.rules import Role, author_role, order_role

from .models import OPEN_STATES, RefundCase

OPEN_CASE_HOLDS_CANCEL = (
    "This order has an open refund case; withdraw or finish it before cancelling."
)


def refund_open_case_holds(order_ids: list[int]) -> dict[int, str]:
    """Registered in `orders.hooks.cancel_holds`: an order with an open case is settled
    through the case, not cancelled beside it."""
    held = RefundCase.objects.filter(order_id__in=order_ids, state__in=OPEN_STATES)
    return dict.fromkeys(held.values_list("order_id", flat=True), OPEN_CASE_HOLDS_CANCEL)


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
ACTION_OF_METHOD: dict[str, CaseAction] = {a.method: a for a in CASE_ACTIONS}


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


def refund_dispute_refusal(*, case: RefundCase, user: User, now: datetime) -> DomainError | None:
    """Only the buyer disputes, only a case closed as rejected, withdrawn, expired or with a
    declined offer, and only until its `dispute_by`."""
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
    return None
