"""Shared tools of the reliability suites: release threads together, judge "paid once".

Threads each open their own database connection (Django's are per thread) and close it in
`finally`, so fifty racing requests are fifty real PostgreSQL sessions contending for row locks.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Sum

from orders.models import Event, Order
from payouts.models import GatewayRefund, Payout, PayoutStatus

THREAD_TIMEOUT = 60.0


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None


def run_together(
    calls: Sequence[Callable[[], Any]], *, timeout: float = THREAD_TIMEOUT
) -> list[Outcome]:
    """Run every call in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def work(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[index].value = call()
        except BaseException as exc:
            outcomes[index].error = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"{len(stuck)} thread(s) still running after {timeout}s (a deadlock?)"
    return outcomes


def raise_unexpected(outcomes: Sequence[Outcome]) -> None:
    """Fail on any error a racing caller should never see (IntegrityError, deadlock, …)."""
    for outcome in outcomes:
        if outcome.error is not None:
            raise AssertionError(f"a racing call failed: {outcome.error!r}") from outcome.error


def assert_paid_at_most_total(order: Order) -> None:
    """The refund cap (docs/rules.md, Refund cap), checked on our rows and on the gateway's own
    ledger."""
    order = Order.objects.get(pk=order.pk)
    live = Payout.objects.filter(order=order).exclude(status=PayoutStatus.CANCELLED)
    paid = live.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    assert paid <= order.total, f"{order.number}: payouts {paid} > total {order.total}"
    assert order.reserved == paid, f"{order.number}: reserved {order.reserved} != payouts {paid}"
    ledger = GatewayRefund.objects.filter(payment_reference=order.payment_reference)
    refunded = ledger.aggregate(s=Sum("amount"))["s"] or Decimal(0)
    assert refunded <= order.total, f"{order.number}: gateway refunded {refunded} > total"
    keys = Counter(ledger.values_list("idempotency_key", flat=True))
    assert all(n == 1 for n in keys.values()), f"a key refunded twice: {keys}"


def assert_paid_once(order: Order, *, key: str, amount: Decimal | str) -> None:
    """Exactly one payout and exactly one gateway refund, of `amount`, for this order."""
    payouts = list(Payout.objects.filter(order=order))
    assert [(p.idempotency_key, p.amount, p.status) for p in payouts] == [
        (key, Decimal(amount), PayoutStatus.SUCCEEDED)
    ], payouts
    ledger = list(GatewayRefund.objects.filter(payment_reference=order.payment_reference))
    assert [(g.idempotency_key, g.amount) for g in ledger] == [(key, Decimal(amount))], ledger
    assert_paid_at_most_total(order)


def event_counts(**filters: Any) -> Counter[str]:
    return Counter(Event.objects.filter(**filters).values_list("kind", flat=True))
