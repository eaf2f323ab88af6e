"""What the API offers is what the services accept: a walk over the three state machines.

Starting from one paid order, the walk takes every action the API offers, as whoever it is
offered to, and goes on from the state it leads to (each reached state once, every try inside a
savepoint that is rolled back), files refund cases from every order state, opens disputes from
the cases and lets payouts settle. In every state it reaches, for every role (`orders.rules.ROLES`)
and twice (at once, and after every deadline has passed), it tries every action the API knows:
an action offered must be accepted, an action not offered must be refused. At the end the walk
must have seen every state each machine declares, so no state escapes the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from disputes import services as dispute_services
from disputes.models import Dispute, DisputeState, Party
from disputes.rules import ACTION_ROLES
from kernel.errors import DomainError
from orders.api import OrderActionsOut
from orders.models import Order, OrderStatus, User
from orders.rules import ROLES
from payouts.chargebacks import chargeback_closed, chargeback_opened
from payouts.services import payout_attempt
from refunds.models import OPEN_STATES, Reason, RefundCase, State
from refunds.rules import CASE_ACTIONS
from tests.conftest import api_client_for
from tests.disputes.factories import png_upload
from tests.orders.factories import OrderFactory

# Long after every window and deadline of the three machines has passed.
LATER = timedelta(days=60)

Attempt = Callable[[User], int]


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _post(user: User, name: str, body: dict[str, Any] | None = None, **kwargs: Any) -> int:
    fmt = "multipart" if body and "file" in body else "json"
    client = api_client_for(user)
    return client.post(reverse(f"api:{name}", kwargs=kwargs), body or {}, format=fmt).status_code


def _service(call: Callable[[], Any]) -> int:
    try:
        call()
    except DomainError as exc:
        return exc.status_code
    return 200


def _tried(attempt: Attempt, user: User) -> int:
    """The action's answer, with nothing it did kept."""
    with transaction.atomic():
        status = attempt(user)
        transaction.set_rollback(True)
    return status


# --- how each action is asked for, by its name in the API's `actions` --------------------------
# (the inputs each needs; which actions exist comes from the API and the rule modules)


def order_attempts(order: Order) -> dict[str, list[Attempt]]:
    number = order.number
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "cancel": ("order-cancel", {}),
        "cancel_out_of_stock": ("order-cancel-out-of-stock", {}),
        "message": ("order-messages", {"body": "Is it on its way?"}),
        "ship": ("order-ship", {"carrier": "DHL", "tracking_number": "JD0001"}),
        "deliver": ("order-deliver", {}),
    }
    return {
        action: [lambda u, n=name, b=body: _post(u, n, b, number=number)]
        for action, (name, body) in bodies.items()
    }


def case_attempts(case: RefundCase) -> dict[str, list[Attempt]]:
    key = {"public_id": case.public_id}
    bodies: dict[str, dict[str, Any]] = {
        "offer": {"amount": "5.00"},
        "reject": {"reason": "The seal is broken."},
        "ship-return": {"carrier": "DHL", "tracking_number": "RT0001"},
    }
    attempts: dict[str, list[Attempt]] = {
        a.name: [lambda u, n=a.name: _post(u, f"refund-{n}", bodies.get(n), **key)]
        for a in CASE_ACTIONS
    }
    dispute = {
        "refund": str(case.public_id),
        "statement": "The seller refused without looking at the photos.",
        "contact_name": "Bea",
        "contact_email": "bea@example.com",
        "desired_amount": "10.00",
    }
    attempts["open-dispute"] = [lambda u: _post(u, "dispute-list", dispute)]
    return attempts


def dispute_attempts(dispute: Dispute) -> dict[str, list[Attempt]]:
    key = {"dispute_id": str(dispute.public_id)}

    def post(name: str, body: dict[str, Any] | None = None) -> Attempt:
        return lambda u: _post(u, name, body, **key)

    attempts: dict[str, list[Attempt]] = {
        "statement": [post("dispute-statement", {"body": "The buyer used it."})],
        "message": [post("dispute-messages", {"body": "Here is more."})],
        "evidence": [lambda u: _post(u, "dispute-evidence", {"file": png_upload()}, **key)],
        "withdraw": [post("dispute-withdraw")],
        # Staff assign and review on the admin desk, which calls these services.
        "assign": [
            lambda u: _service(
                lambda: dispute_services.dispute_assign(dispute=dispute, staff=u, assignee=u)
            )
        ],
        "start_review": [
            lambda u: _service(
                lambda: dispute_services.dispute_start_review(dispute=dispute, staff=u)
            )
        ],
        "request_info": [
            post("dispute-request-info", {"party": party, "question": "Photos?"})
            for party in Party.values
        ],
        "decide": [
            post("dispute-decide", {"outcome": outcome, "rationale": "Seen the photos."})
            for outcome in Party.values
        ],
    }
    assert set(attempts) == set(ACTION_ROLES), "every dispute action has a way to ask for it"
    return attempts


# --- what the API and the pages offer ------------------------------------------------------------


def _get(user: User, name: str, **kwargs: Any) -> dict[str, Any] | None:
    response = api_client_for(user).get(reverse(f"api:{name}", kwargs=kwargs))
    assert response.status_code in (200, 404), response.content
    return response.json() if response.status_code == 200 else None


# Each is None when the viewer may not see the object at all (404 for every action too).


def offered_on_order(order: Order, user: User) -> set[str] | None:
    data = _get(user, "order-detail", number=order.number)
    return set(data["actions"]) if data else None


def offered_on_case(case: RefundCase, user: User) -> set[str] | None:
    data = _get(user, "refund-detail", public_id=case.public_id)
    return {a["action"] for a in data["actions"]} if data else None


def offered_on_dispute(dispute: Dispute, user: User) -> set[str] | None:
    data = _get(user, "dispute-detail", dispute_id=str(dispute.public_id))
    return set(data["actions"]) if data else None


def _page(user: User, path: str) -> Any:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    return response.context if response.status_code == 200 else None


# The order page has buttons for the two cancellations (shipping is the marketplace's feed).
ORDER_PAGE_BUTTONS = {"cancel": "can_cancel", "cancel_out_of_stock": "can_cancel_out_of_stock"}


def page_offers_on_order(order: Order, user: User) -> set[str] | None:
    context = _page(user, reverse("order-detail", args=[order.number]))
    if context is None:
        return None
    return {action for action, flag in ORDER_PAGE_BUTTONS.items() if context[flag]}


def page_offers_on_case(case: RefundCase, user: User) -> set[str] | None:
    context = _page(user, reverse("case-detail", args=[case.public_id]))
    return None if context is None else set(context["available"])


def page_offers_on_dispute(dispute: Dispute, user: User) -> set[str] | None:
    context = _page(user, reverse("dispute-detail", args=[dispute.public_id]))
    return None if context is None else set(context["actions"])


# --- the walk ------------------------------------------------------------------------------------


@dataclass
class Walk:
    people: dict[str, User]
    seen: set[tuple[Any, ...]] = field(default_factory=set)
    states: dict[str, set[str]] = field(
        default_factory=lambda: {"order": set(), "case": set(), "dispute": set()}
    )
    checked: int = 0

    def check(
        self,
        offered: Callable[[User], set[str] | None],
        attempts: dict[str, list[Attempt]],
        page: Callable[[User], set[str] | None],
        where: str,
        buttons: set[str] | None = None,
    ) -> set[tuple[str, str]]:
        """Offered ⇔ accepted, for every role, now and after every deadline; returns what was
        offered now (action, role), which the walk then takes."""
        taken: set[tuple[str, str]] = set()
        start = timezone.now()
        for when in (start, start + LATER):
            with time_machine.travel(when, tick=False):
                for role, user in self.people.items():
                    cache.clear()  # the per-user POST limits are not what is tested here
                    actions = offered(user)
                    if actions is None:  # not visible: the selectors answer 404 to everything
                        continue
                    assert actions <= set(attempts), f"{where}: unknown action offered"
                    for action, ways in attempts.items():
                        status = _tried(ways[0], user)
                        if action in actions:
                            assert _ok(status), f"{where}: {role} offered {action}, got {status}"
                        else:
                            assert not _ok(status), f"{where}: {role} not offered {action}"
                        self.checked += 1
                    if when == start:
                        taken |= {(action, role) for action in actions}
                        if role in ("buyer", "seller", "staff"):
                            # the page's buttons (of the actions it has buttons for) agree
                            shown = page(user)
                            if shown is not None:
                                expected = actions if buttons is None else actions & buttons
                                assert shown == expected, f"{where}: {role}'s page shows {shown}"
        return taken

    def first_visit(self, key: tuple[Any, ...]) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def each(self, ways: list[Attempt], user: User, then: Callable[[], None]) -> None:
        """Take the action (each of its ways), go on from where it leads, then undo it."""
        for way in ways:
            with transaction.atomic():
                if _ok(way(user)):
                    then()
                transaction.set_rollback(True)

    # -- orders

    def order(self, order: Order) -> None:
        order = Order.objects.select_related("shop").get(pk=order.pk)
        open_case = order.refund_cases.filter(state__in=OPEN_STATES).exists()
        if not self.first_visit(("order", order.status, open_case)):
            return
        self.states["order"].add(order.status)
        attempts = order_attempts(order)
        where = f"order {order.status}{' with an open case' if open_case else ''}"
        offered = self.check(
            lambda u: offered_on_order(order, u),
            attempts,
            lambda u: page_offers_on_order(order, u),
            where,
            buttons=set(ORDER_PAGE_BUTTONS),
        )
        for action, role in sorted(offered):
            self.each(attempts[action], self.people[role], lambda: self.order(order))
        # The buyer files a case from this state, with a return and without, when they may.
        for return_item in (False, True):
            self.each([self._file(order, return_item)], self.people["buyer"], self._last_case)

    def _file(self, order: Order, return_item: bool) -> Attempt:
        def file(user: User) -> int:
            for reason in Reason.values:
                body = {
                    "order": order.number,
                    "reason": reason,
                    "amount": "10.00",
                    "return_item": return_item,
                }
                status = _post(user, "refund-list", body)
                if _ok(status):
                    return status
            return 400

        return file

    def _last_case(self) -> None:
        self.case(RefundCase.objects.order_by("-id").first())

    # -- refund cases

    def case(self, case: RefundCase | None) -> None:
        assert case is not None
        case = RefundCase.objects.select_related("order").get(pk=case.pk)
        self.order(case.order)
        # A return changes the way on only while the seller has not answered.
        key = (
            "case",
            case.state,
            case.closed_reason,
            case.state == State.REQUESTED and case.return_item,
        )
        if not self.first_visit(key):
            return
        self.states["case"].add(case.state)
        attempts = case_attempts(case)
        offered = self.check(
            lambda u: offered_on_case(case, u),
            attempts,
            lambda u: page_offers_on_case(case, u),
            f"case {case.state} {case.closed_reason}".strip(),
        )
        for action, role in sorted(offered):
            then = self._dispute_of(case) if action == "open-dispute" else lambda: self.case(case)
            self.each(attempts[action], self.people[role], then)
        if case.state == State.REFUND_PENDING and case.payout_id is not None:
            # The gateway confirms the payout (the system's step, not a party's).
            with transaction.atomic():
                payout_attempt(payout_id=case.payout_id)
                self.case(case)
                transaction.set_rollback(True)

    def _dispute_of(self, case: RefundCase) -> Callable[[], None]:
        return lambda: self.dispute(Dispute.objects.get(case=case))

    # -- disputes

    def dispute(self, dispute: Dispute) -> None:
        dispute = Dispute.objects.get(pk=dispute.pk)
        self.case(dispute.case)
        stated = dispute.is_undecided and dispute.seller_statement_at is not None
        key = ("dispute", dispute.state, stated, dispute.info_party)
        if not self.first_visit(key):
            return
        self.states["dispute"].add(dispute.state)
        attempts = dispute_attempts(dispute)
        offered = self.check(
            lambda u: offered_on_dispute(dispute, u),
            attempts,
            lambda u: page_offers_on_dispute(dispute, u),
            f"dispute {dispute.state}",
        )
        for action, role in sorted(offered):
            self.each(attempts[action], self.people[role], lambda: self.dispute(dispute))
        if dispute.is_undecided:
            # The buyer's bank takes the payment back (the system's step, from Stripe's events).
            with transaction.atomic():
                order = dispute.case.order
                stripe = {"id": f"dp_{order.pk}", "amount": 1000, "currency": "usd"}
                stripe |= {"charge": order.payment_reference, "status": "lost"}
                chargeback_opened(dispute=stripe, at=timezone.now())
                chargeback_closed(dispute=stripe, at=timezone.now())
                self.dispute(dispute)
                transaction.set_rollback(True)


@pytest.mark.django_db
def test_every_action_offered_is_accepted_and_every_other_refused(
    buyer, seller, staff, marketplace, other_buyer
):
    people = {"buyer": buyer, "seller": seller, "staff": staff, "marketplace": marketplace}
    people["other"] = other_buyer
    assert set(people) == set(ROLES)
    walk = Walk(people=people)

    walk.order(OrderFactory(buyer=buyer, shop=seller.shops.get()))

    # the walk met every state the three machines declare
    assert walk.states["order"] == set(OrderStatus.values)
    assert walk.states["case"] == set(State.values)
    assert walk.states["dispute"] == set(DisputeState.values)
    assert set(OrderActionsOut().fields) == set(order_attempts(Order(number="x")))
    assert walk.checked > 1000
