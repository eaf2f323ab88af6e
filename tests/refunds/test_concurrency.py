"""Races with real threads on PostgreSQL (docs/architecture.md, Tests): each case moves once and
pays once.

`transactional_db`: every thread commits for real, so the payouts queued with on_commit run
(eagerly) and the fake gateway's ledger says how often money actually left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from kernel.errors import DomainError
from orders.models import Event
from payouts.models import GatewayRefund, Payout
from refunds import services
from refunds.models import RefundCase, State
from refunds.sweeps import refund_sweeps_run
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory
from tests.refunds.factories import SECOND, file_refund

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment in their own threads (and connections)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # the outcome under test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_accepts_pay_exactly_once(buyer, seller, order):
    # given a request for 20.00 with nothing to send back
    case = file_refund(order, amount="20.00")

    # when the seller's accept arrives twice at once (double click, two tabs)
    results = race(*[lambda: services.refund_accept(case=case, actor=seller)] * 2)

    # then one accept won, the other was refused, and the gateway refunded once
    assert sum(isinstance(r, RefundCase) for r in results) == 1
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], DomainError)
    assert refused[0].code == "invalid_transition"
    assert GatewayRefund.objects.filter(payment_reference=order.payment_reference).count() == 1
    assert Payout.objects.filter(order=order).count() == 1
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUNDED


def test_concurrent_filings_make_one_case(buyer, order):
    # when the buyer's request is submitted twice at once
    results = race(*[lambda: file_refund(order, amount="10.00")] * 2)

    # then one case exists and the other submission is a duplicate
    assert RefundCase.objects.filter(order=order).count() == 1
    codes = sorted(getattr(r, "code", "created") for r in results)
    assert codes == ["created", "duplicate"]


def test_two_sweeps_at_once_move_each_case_once(buyer, seller):
    # given 16 silent requests, all past respond_by
    cases = [
        file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="5.00")
        for _ in range(16)
    ]
    due = max(c.respond_by for c in cases) + SECOND

    # when two sweeps run at the same time, in small batches
    results = race(*[lambda: refund_sweeps_run(now=due, batch_size=3)] * 2)

    # then every case was auto-accepted once, by one sweep or the other, and paid once
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r["auto_accept"] for r in results) == 16
    for case in cases:
        assert (
            Event.objects.filter(case_id=case.public_id, kind="refund.auto_accepted").count() == 1
        )
    assert Payout.objects.count() == 16
    assert GatewayRefund.objects.count() == 16


def test_seller_answer_racing_the_sweep_moves_the_case_once(buyer, seller, order):
    # given a request at its deadline: the seller rejects just as the sweep runs past it
    case = file_refund(order, amount="20.00")
    at = case.respond_by

    results = race(
        lambda: services.refund_reject(case=case, actor=seller, reason="No", now=at),
        lambda: refund_sweeps_run(now=at + SECOND),
    )

    # then exactly one of them moved it
    assert not [
        r for r in results if isinstance(r, Exception) and not isinstance(r, DomainError)
    ], results
    moved = Event.objects.filter(
        case_id=case.public_id, kind__in=["refund.rejected", "refund.auto_accepted"]
    ).count()
    assert moved == 1
