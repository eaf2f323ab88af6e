"""No database lock is held across a network call (docs/architecture.md, Tasks and beat).

A payout's task spends most of its life waiting for Stripe's answer; under the threads pool dozens
of them wait at once. If that wait held the payout's or the order's row lock, every admin action,
webhook and sweep touching those rows would queue behind the network. Real threads on PostgreSQL:
while the local Stripe server holds the refund request open, another connection must be able to
lock both rows at once (`NOWAIT` fails immediately on a row somebody else has locked).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction

from orders.models import Order
from payouts.models import Payout, PayoutStatus
from tests.conftest import requires_postgres
from tests.payouts.helpers import make_payout, stripe_order

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

HOLD_SECONDS = 3.0
KEY = "refund:held-open"


def _create_in_thread(order: Order, outcome: dict[str, Any]) -> threading.Thread:
    """The payout is created and, on commit, its task runs (eagerly under the test settings)
    in this thread, as in a worker's."""

    def run() -> None:
        try:
            outcome["value"] = make_payout(order, key=KEY)
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_request(stripe_server: Any, thread: threading.Thread) -> None:
    deadline = time.monotonic() + HOLD_SECONDS
    while not stripe_server.requests:
        assert thread.is_alive(), "the payout finished without calling Stripe"
        assert time.monotonic() < deadline, "Stripe was never called"
        time.sleep(0.01)


def test_while_stripe_holds_the_refund_open_the_payout_and_its_order_can_be_locked(
    stripe_server,
):
    # given a Stripe card order, and a Stripe that takes its time to answer
    order = stripe_order()
    stripe_server.answer(f"hang:{HOLD_SECONDS}")

    # when a payout is created and sent from another thread, and Stripe has the request but has
    # not answered yet
    outcome: dict[str, Any] = {}
    thread = _create_in_thread(order, outcome)
    _wait_for_request(stripe_server, thread)
    payout = Payout.objects.get(idempotency_key=KEY)

    # then another connection locks the payout and the order at once, without waiting
    with transaction.atomic():
        locked_payout = Payout.objects.select_for_update(nowait=True).get(pk=payout.pk)
        locked_order = Order.objects.select_for_update(nowait=True).get(pk=payout.order_id)
    assert locked_payout.status == PayoutStatus.PENDING
    assert locked_order.pk == payout.order_id
    assert thread.is_alive(), "Stripe answered before the locks were tried"

    # and once Stripe answers, the payout settles, paid once
    thread.join(timeout=HOLD_SECONDS + 10)
    assert "error" not in outcome, outcome.get("error")
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.SUCCEEDED
    assert [r.idempotency_key for r in stripe_server.ledger] == [payout.idempotency_key]
