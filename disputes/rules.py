"""The dispute's rules, each once: the viewer's role and which actions each party has now.

`dispute_action_refusal` answers `None` or the domain error the service raises; the API's
`actions`, the dispute page and the admin desk read the same answer (docs/rules.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django_fsm import can_proceed

from kernel import windows
from kernel.errors import DomainError, Duplicate, InvalidTransition, NotAllowed
from orders.models import User
from orders.rules import Role, author_role, order_role

from .models import Dispute

# Who may take each action on a dispute; whether it is possible now depends on the state.
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "statement": ("seller",),
    "message": ("buyer", "seller", "staff"),
    "evidence": ("buyer", "seller", "staff"),
    "withdraw": ("buyer",),
    "assign": ("staff",),
    "start_review": ("staff",),
    "request_info": ("staff",),
    "decide": ("staff",),
}
ACTION_WORDS = {
    "statement": "add the seller's statement",
    "message": "write on this dispute",
    "evidence": "add evidence to this dispute",
    "withdraw": "withdraw this dispute",
    "assign": "assign disputes",
    "start_review": "review disputes",
    "request_info": "ask for information",
    "decide": "decide disputes",
}
# The transition an action runs, whose source states (django-fsm) say when it is possible; the
# others are possible while the dispute is undecided.
_TRANSITION = {
    "withdraw": "withdraw",
    "start_review": "start_review",
    "request_info": "request_info",
    "decide": "decide_for_buyer",  # decide_for_seller has the same source states
}
_DOING = {
    "statement": "add a statement",
    "message": "write on it",
    "evidence": "add evidence",
    "withdraw": "withdraw it",
    "assign": "reassign it",
    "start_review": "start a review",
    "request_info": "ask for information",
    "decide": "decide it",
}


def dispute_role(*, dispute: Dispute, user: User) -> Role:
    """The viewer's part in the dispute: its order's."""
    return order_role(order=dispute.case.order, user=user)


def dispute_author_role(author_id: Any, dispute: Dispute) -> Literal["buyer", "seller", "staff"]:
    """Who wrote or uploaded something on the dispute: buyer, seller, or else staff."""
    return author_role(order=dispute.case.order, author_id=author_id)


def dispute_role_refusal(*, dispute: Dispute, user: User, action: str) -> DomainError | None:
    """Whether `action` is the user's on this dispute at all (403), asked before a body is read."""
    roles = ACTION_ROLES[action]
    if dispute_role(dispute=dispute, user=user) not in roles:
        who = " or ".join("staff" if r == "staff" else f"the {r}" for r in roles)
        return NotAllowed(f"Only {who} can {ACTION_WORDS[action]}.")
    return None


def dispute_can_decide_now(*, dispute: Dispute, now: datetime) -> bool:
    """Once the seller has made a statement or its 48 h have passed."""
    return dispute.seller_statement_at is not None or now > dispute.statement_by


def dispute_action_refusal(
    *, dispute: Dispute, user: User, action: str, now: datetime
) -> DomainError | None:
    """May `user` take `action` on the dispute now: their role's, and possible in this state."""
    if (refusal := dispute_role_refusal(dispute=dispute, user=user, action=action)) is not None:
        return refusal
    method = _TRANSITION.get(action)
    if not (can_proceed(getattr(dispute, method)) if method else dispute.is_undecided):
        return InvalidTransition(
            f"This dispute is {dispute.get_state_display().lower()}; "
            f"you cannot {_DOING[action]} now."
        )
    if action == "statement" and dispute.seller_statement_at is not None:
        return Duplicate("Your statement is on file already; add a message instead.")
    if action == "decide" and not dispute_can_decide_now(dispute=dispute, now=now):
        return InvalidTransition(
            "The seller may make a statement until "
            f"{windows.format_both(dispute.statement_by, user.time_zone)}; "
            "decide after that or once it is in."
        )
    return None


def dispute_actions(*, dispute: Dispute, user: User, now: datetime) -> list[str]:
    """What the viewer may do on the dispute now: every action the rule does not refuse."""
    return [
        action
        for action in ACTION_ROLES
        if dispute_action_refusal(dispute=dispute, user=user, action=action, now=now) is None
    ]
