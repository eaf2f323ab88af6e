"""A buyer-wins decision submitted twice at once pays exactly once (docs/rules.md, Paid exactly
once; Deciding a dispute).

Real threads on PostgreSQL: each request locks order → case → dispute, so the second sees the
dispute decided and is refused; "paid once" is judged by the fake gateway's own ledger.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from disputes import services
from disputes.models import Dispute, DisputeState
from kernel.errors import InvalidTransition
from orders.models import Event
from payouts.models import GatewayRefund, Payout
from refunds.models import RefundCase
from refunds.models import State as CaseState
from tests.conftest import api_client_for, requires_postgres
from tests.disputes.factories import dispute_for, with_statement

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def _race(n: int, attempt) -> list[str]:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(n)
    outcomes: list[str] = []

    def run() -> None:
        try:
            barrier.wait()
            outcomes.append(attempt())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def _assert_paid_once(dispute: Dispute, amount: str) -> None:
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.RESOLVED_BUYER
    case = RefundCase.objects.select_related("order").get(pk=dispute.case_id)
    assert case.state == CaseState.REFUNDED
    ledger = GatewayRefund.objects.filter(payment_reference=case.order.payment_reference)
    assert [str(r.amount) for r in ledger] == [amount]
    assert Payout.objects.filter(order=case.order).count() == 1
    assert Event.objects.filter(kind="dispute.decided", dispute_id=dispute.public_id).count() == 1
    case.order.refresh_from_db()
    assert str(case.order.reserved) == amount


def test_service_called_three_times_at_once_pays_once(buyer, seller, staff):
    # given a dispute the seller answered
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller, desired_amount="45.00"))

    def decide() -> str:
        try:
            services.dispute_decide(
                dispute=dispute,
                staff=staff,
                outcome="buyer",
                rationale="The photos show the crack.",
            )
        except InvalidTransition:
            return "conflict"
        return "decided"

    # when three decisions for the buyer arrive at the same moment
    outcomes = _race(3, decide)

    # then one is applied, the others are refused, and the gateway refunded once
    assert outcomes == ["conflict", "conflict", "decided"]
    _assert_paid_once(dispute, "45.000")


def test_decide_endpoint_posted_twice_at_once_pays_once(buyer, seller, staff):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    url = f"/api/v1/disputes/{dispute.public_id}/decide/"

    def post() -> str:
        response = api_client_for(staff).post(
            url, {"outcome": "buyer", "amount": "20.00", "rationale": "Cracked."}, format="json"
        )
        return str(response.status_code)

    assert _race(2, post) == ["200", "409"]
    _assert_paid_once(dispute, "20.000")


def test_a_decision_racing_the_sla_sweep_neither_deadlocks_nor_loses_anything(
    buyer, seller, staff, monkeypatch
):
    # given an overdue dispute the seller answered, and a decision that pauses right after it
    # locked the order (injected race: the sweep claims the dispute in that gap)
    from datetime import timedelta

    from django.utils import timezone

    from disputes.sweeps import dispute_sweeps_run

    opened = timezone.now() - timedelta(days=30)
    dispute = with_statement(
        dispute_for(buyer=buyer, seller=seller, opened_at=opened),
        now=opened + timedelta(hours=1),
    )
    order_locked, swept = threading.Event(), threading.Event()
    original = services.case_lock

    def slow_case_lock(case):  # type: ignore[no-untyped-def]
        locked = original(case)
        order_locked.set()
        swept.wait(timeout=3)  # the sweep cannot finish while we wait: it must not need us
        return locked

    monkeypatch.setattr(services, "case_lock", slow_case_lock)
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            services.dispute_decide(
                dispute=dispute, staff=staff, outcome="seller", rationale="No damage shown."
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def sweep() -> None:
        try:
            order_locked.wait(timeout=5)
            dispute_sweeps_run(now=timezone.now())
        except BaseException as exc:
            errors.append(exc)
        finally:
            swept.set()
            connection.close()

    # when both run
    threads = [threading.Thread(target=decide), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then neither failed: the dispute was flagged and then decided
    assert not errors, errors
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.RESOLVED_SELLER
    assert dispute.due_flagged_at is not None
    assert Event.objects.filter(kind="dispute.sla_due_passed").count() == 1
