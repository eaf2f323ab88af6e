"""Nothing is paid twice under real concurrency (docs/rules.md, Paid exactly once): fifty requests
at once, PostgreSQL.

Every scenario releases fifty threads at the same instant (a barrier) against one case, offer,
dispute or order, through the JSON API as the parties would, and is repeated `ROUNDS` times on
fresh rows: a race that is lost only sometimes still fails the suite. "Paid once" is judged by
the fake gateway's own ledger (`GatewayRefund`), not only by our payout rows. Celery is eager
here, so each winner's payout is sent to the gateway on commit, inside the racing thread.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from disputes.models import Dispute, DisputeState
from kernel.errors import AmountExceedsRefundable, ValidationFailed
from orders import services as order_services
from orders.models import Event, Order, OrderStatus
from payouts import services as payout_services
from payouts.models import GatewayRefund, Payout, PayoutStatus
from refundportal import deadlines
from refundportal import tasks as beat_tasks
from refunds import services as refund_services
from refunds.models import RefundCase, State
from tests.conftest import api_client_for, requires_postgres
from tests.disputes.factories import dispute_for, with_statement
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

from .helpers import (
    assert_paid_at_most_total,
    assert_paid_once,
    event_counts,
    raise_unexpected,
    run_together,
)

pytestmark = [requires_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

THREADS = 50
ROUNDS = 3
# What a losing racer may hear; never a 5xx.
LOSING = {400, 403, 409}


def post(user: Any, name: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A callable that POSTs one action as `user`, for a racing thread."""
    url = reverse(f"api:{name}", kwargs=kwargs)

    def call() -> tuple[int, Any]:
        response = api_client_for(user).post(url, body or {}, format="json")
        return response.status_code, response.json()

    return call


def statuses(outcomes: list[Any]) -> Counter[int]:
    raise_unexpected(outcomes)
    codes: Counter[int] = Counter(o.value[0] for o in outcomes)
    assert all(code < 500 for code in codes), codes
    return codes


def new_order(buyer: Any, seller: Any, **kw: Any) -> Order:
    return OrderFactory(buyer=buyer, shop=seller.shops.get(), **kw)


# --- one action, fifty times at once -----------------------------------------------------------


def test_fifty_seller_accepts_pay_once(buyer, seller):
    for _ in range(ROUNDS):  # fresh rows each round
        _fifty_seller_accepts_pay_once(buyer, seller)


def _fifty_seller_accepts_pay_once(buyer, seller) -> None:
    # given a requested case for the whole order
    order = new_order(buyer, seller)
    case = file_refund(order, amount="59.90")

    # when the seller's accept arrives fifty times at once
    codes = statuses(
        run_together([post(seller, "refund-accept", public_id=case.public_id)] * THREADS)
    )

    # then one accept won, the rest heard 409, and the gateway refunded once
    assert codes == Counter({200: 1, 409: THREADS - 1})
    case.refresh_from_db()
    assert case.state == State.REFUNDED
    assert_paid_once(order, key=f"refund:{case.public_id}", amount="59.90")
    counts = event_counts(case_id=case.public_id)
    assert counts["refund.accepted"] == 1
    assert counts["refund.refunded"] == 1
    assert event_counts(order=order)["payout.succeeded"] == 1


def test_fifty_offer_acceptances_pay_once(buyer, seller):
    for _ in range(ROUNDS):  # fresh rows each round
        _fifty_offer_acceptances_pay_once(buyer, seller)


def _fifty_offer_acceptances_pay_once(buyer, seller) -> None:
    # given a partial offer of 20.00 on a 59.90 request
    order = new_order(buyer, seller)
    case = file_refund(order, amount="59.90")
    refund_services.refund_offer(case=case, actor=seller, amount="20.00")

    # when the buyer's accept-offer arrives fifty times at once
    codes = statuses(
        run_together([post(buyer, "refund-accept-offer", public_id=case.public_id)] * THREADS)
    )

    # then the offer's amount is refunded exactly once
    assert codes == Counter({200: 1, 409: THREADS - 1})
    case.refresh_from_db()
    assert (case.state, case.refunded_amount) == (State.REFUNDED, Decimal("20.00"))
    assert_paid_once(order, key=f"refund:{case.public_id}", amount="20.00")
    assert event_counts(case_id=case.public_id)["refund.offer_accepted"] == 1


def test_fifty_dispute_decisions_pay_once(buyer, seller, staff):
    for _ in range(ROUNDS):  # fresh rows each round
        _fifty_dispute_decisions_pay_once(buyer, seller, staff)


def _fifty_dispute_decisions_pay_once(buyer, seller, staff) -> None:
    # given a dispute the seller has answered
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    order = dispute.case.order
    body = {"outcome": "buyer", "amount": "45.00", "rationale": "Photos show the crack."}

    # when staff submit the decision fifty times at once
    codes = statuses(
        run_together([post(staff, "dispute-decide", body, dispute_id=dispute.public_id)] * THREADS)
    )

    # then one decision stands and its amount is paid once
    assert codes == Counter({200: 1, 409: THREADS - 1})
    dispute.refresh_from_db()
    assert (dispute.state, dispute.amount) == (DisputeState.RESOLVED_BUYER, Decimal("45.00"))
    assert RefundCase.objects.get(pk=dispute.case_id).state == State.REFUNDED
    assert_paid_once(order, key=f"refund:{dispute.case.public_id}", amount="45.00")
    assert event_counts(dispute_id=dispute.public_id)["dispute.decided"] == 1


def test_fifty_cancellations_by_buyer_and_seller_pay_once(buyer, seller):
    for _ in range(ROUNDS):  # fresh rows each round
        _fifty_cancellations_by_buyer_and_seller_pay_once(buyer, seller)


def _fifty_cancellations_by_buyer_and_seller_pay_once(buyer, seller) -> None:
    # given an unshipped order inside the 24 h instant-cancellation window
    order = new_order(buyer, seller)

    # when the buyer cancels and the seller cancels it as out of stock, fifty times at once
    calls = [
        post(buyer, "order-cancel", number=order.number),
        post(seller, "order-cancel-out-of-stock", number=order.number),
    ] * (THREADS // 2)
    codes = statuses(run_together(calls))

    # then it is cancelled once and refunded in full once
    assert codes == Counter({200: 1, 409: THREADS - 1})
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert_paid_once(order, key=f"cancel:{order.number}", amount="59.90")
    assert event_counts(order=order)["order.cancelled"] == 1


# --- different actions on the same case, fifty at once ------------------------------------------


def _last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _case_moves(case: RefundCase, since: int) -> list[str]:
    """Kinds of the user actions that moved the case since event `since` (not the payout's)."""
    # By id, the order the row locks let them commit in (`created_at` is each request's own
    # start, taken before it waited for the lock).
    return list(
        Event.objects.filter(case_id=case.public_id, id__gt=since)
        .exclude(kind__in=["payout.created", "payout.succeeded", "refund.refunded"])
        .order_by("id")
        .values_list("kind", flat=True)
    )


# The orders in which the actions raced below may legally move a requested case.
REQUESTED_PATHS = {
    ("refund.accepted",),
    ("refund.rejected",),
    ("refund.withdrawn",),
    ("refund.offer_made",),
    ("refund.offer_made", "refund.withdrawn"),
}


def test_every_party_acting_on_one_requested_case_at_once_moves_it_once(buyer, seller):
    for _ in range(ROUNDS):  # fresh rows each round
        _every_party_acting_on_one_requested_case_at_once_moves_it_once(buyer, seller)


def _every_party_acting_on_one_requested_case_at_once_moves_it_once(buyer, seller) -> None:
    # given a requested case on an unshipped order (so the order could be cancelled too)
    order = new_order(buyer, seller)
    case = file_refund(order, amount="59.90")
    cid = case.public_id
    actions = [
        post(seller, "refund-accept", public_id=cid),
        post(seller, "refund-offer", {"amount": "30.00"}, public_id=cid),
        post(seller, "refund-reject", {"reason": "Used."}, public_id=cid),
        post(buyer, "refund-withdraw", public_id=cid),
        post(buyer, "order-cancel", number=order.number),
        post(seller, "order-cancel-out-of-stock", number=order.number),
    ]

    # when fifty of them arrive at once
    since = _last_event_id()
    codes = statuses(run_together(list(itertools.islice(itertools.cycle(actions), THREADS))))

    # then the case took one legal path, each step once (an offer may still be withdrawn);
    # money left at most once per key and never above the total
    assert set(codes) <= {200} | LOSING, codes
    case.refresh_from_db()
    path = tuple(_case_moves(case, since))
    assert path in REQUESTED_PATHS, path
    assert_paid_at_most_total(order)
    payouts = {p.idempotency_key: p for p in Payout.objects.filter(order=order)}
    if case.state == State.REFUNDED:
        assert set(payouts) == {f"refund:{cid}"}
    else:
        assert f"refund:{cid}" not in payouts
    # a cancellation can only follow once the case stopped being open (reject / withdraw)
    if order.status == OrderStatus.CANCELLED:
        assert case.state == State.CLOSED
        assert set(payouts) == {f"cancel:{order.number}"}
    assert GatewayRefund.objects.filter(payment_reference=order.payment_reference).count() == (
        len(payouts)
    )


def test_every_party_acting_on_one_offer_and_its_dispute_at_once(buyer, seller, staff):
    for _ in range(ROUNDS):  # fresh rows each round
        _every_party_acting_on_one_offer_and_its_dispute_at_once(buyer, seller, staff)


def _every_party_acting_on_one_offer_and_its_dispute_at_once(buyer, seller, staff) -> None:
    # given an offer on one order and a decidable dispute on another, both with open money
    offer_order = new_order(buyer, seller)
    offer_case = file_refund(offer_order, amount="59.90")
    refund_services.refund_offer(case=offer_case, actor=seller, amount="25.00")
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    oid, did = offer_case.public_id, dispute.public_id
    actions = [
        post(buyer, "refund-accept-offer", public_id=oid),
        post(buyer, "refund-decline-offer", public_id=oid),
        post(buyer, "refund-withdraw", public_id=oid),
        post(seller, "refund-accept", public_id=oid),
        post(staff, "dispute-decide", {"outcome": "buyer", "rationale": "Crack."}, dispute_id=did),
        post(staff, "dispute-decide", {"outcome": "seller", "rationale": "Wear."}, dispute_id=did),
        post(buyer, "dispute-withdraw", dispute_id=did),
    ]

    # when fifty of them arrive at once
    since = _last_event_id()
    codes = statuses(run_together(list(itertools.islice(itertools.cycle(actions), THREADS))))

    # then each object moved exactly once, and paid at most once
    assert set(codes) <= {200} | LOSING, codes
    offer_case.refresh_from_db()
    assert len(_case_moves(offer_case, since)) == 1, _case_moves(offer_case, since)
    dispute.refresh_from_db()
    ends = Counter(Event.objects.filter(dispute_id=did).values_list("kind", flat=True))
    assert ends["dispute.decided"] + ends["dispute.withdrawn"] == 1, ends
    for order in (offer_order, dispute.case.order):
        assert_paid_at_most_total(order)
        assert Payout.objects.filter(order=order).count() <= 1
    expected = {
        offer_order.pk: offer_case.state == State.REFUNDED,
        dispute.case.order_id: dispute.state == DisputeState.RESOLVED_BUYER,
    }
    for order_id, paid in expected.items():
        order = Order.objects.get(pk=order_id)
        assert GatewayRefund.objects.filter(
            payment_reference=order.payment_reference
        ).count() == int(paid)


# --- the database cap, even for a caller without the lock --------------------------------------


@pytest.mark.parametrize("take_lock", [True, False], ids=["locked", "unlocked"])
def test_payouts_with_different_keys_never_exceed_the_total(take_lock, buyer, seller):
    # given a 59.90 order and fifty payouts of 20.00 under fifty different keys
    order = new_order(buyer, seller)

    def create(i: int) -> Any:
        def call() -> str:
            with transaction.atomic():
                # Without the lock only the check constraint `reserved <= total` stands guard.
                target = (
                    order_services.order_lock(order)
                    if take_lock
                    else Order.objects.get(pk=order.pk)
                )
                try:
                    payout_services.payout_create(
                        order=target,
                        amount=Decimal("20.00"),
                        purpose="cancel",
                        subject_id=None,
                        idempotency_key=f"test:{order.number}:{i}",
                        actor=None,
                    )
                except (AmountExceedsRefundable, ValidationFailed):
                    return "refused"
            return "created"

        return call

    # when all fifty are created at once
    outcomes = run_together([create(i) for i in range(THREADS)])

    # then at most two fit (2 × 20.00 ≤ 59.90 < 3 × 20.00), by our rows and by the gateway's
    raise_unexpected(outcomes)
    created = [o.value for o in outcomes].count("created")
    assert 1 <= created <= 2
    assert Payout.objects.filter(order=order).count() == created
    assert_paid_at_most_total(order)


# --- two sweeps at once -----------------------------------------------------------------------


def _due_cases(buyer: Any, seller: Any, per_kind: int = 4) -> dict[str, list[RefundCase]]:
    """Cases whose deadline passed, one group per system transition (filed in the past)."""
    now = timezone.now()
    made: dict[str, list[RefundCase]] = {
        "auto_accept": [],
        "offer_lapse": [],
        "return_expiry": [],
        "auto_confirm": [],
    }
    for _ in range(per_kind):
        t0 = now - timedelta(days=3)
        made["auto_accept"].append(
            file_refund(new_order(buyer, seller, placed_at=t0 - timedelta(hours=1)), now=t0)
        )
        t0 = now - timedelta(days=4)
        case = file_refund(
            new_order(buyer, seller, placed_at=t0 - timedelta(hours=1)), now=t0, amount="30.00"
        )
        made["offer_lapse"].append(
            refund_services.refund_offer(
                case=case, actor=seller, amount="10.00", now=t0 + timedelta(hours=1)
            )
        )
        t0 = now - timedelta(days=10)
        case = file_refund(
            new_order(buyer, seller, placed_at=t0 - timedelta(hours=1)), now=t0, return_item=True
        )
        made["return_expiry"].append(
            refund_services.refund_accept(case=case, actor=seller, now=t0 + timedelta(hours=1))
        )
        t0 = now - timedelta(days=20)
        case = file_refund(
            new_order(buyer, seller, placed_at=t0 - timedelta(hours=1)), now=t0, return_item=True
        )
        case = refund_services.refund_accept(case=case, actor=seller, now=t0 + timedelta(hours=1))
        made["auto_confirm"].append(
            refund_services.refund_ship_return(
                case=case,
                actor=buyer,
                carrier="SF",
                tracking_number="SF1",
                now=t0 + timedelta(hours=2),
            )
        )
    return made


SWEEP_KINDS = {
    "auto_accept": ("refund.auto_accepted", State.REFUNDED),
    "offer_lapse": ("refund.offer_lapsed", State.CLOSED),
    "return_expiry": ("refund.return_expired", State.CLOSED),
    "auto_confirm": ("refund.return_auto_confirmed", State.REFUNDED),
}


def _run_enforce_all() -> dict[str, int]:
    return deadlines.enforce_all()


def _run_command() -> str:
    call_command("enforce_deadlines")
    return "ok"


def _run_beat_task() -> Any:
    result = beat_tasks.enforce_deadlines.apply()
    assert result.successful(), result.traceback
    return result.result


@pytest.mark.parametrize(
    "pair",
    [(_run_enforce_all, _run_command), (_run_beat_task, _run_beat_task)],
    ids=["function-and-command", "two-beat-tasks"],
)
def test_two_sweeps_at_once_move_each_case_once(pair, buyer, seller, staff, settings):
    # given cases past each deadline and disputes past their SLA, in small batches so the two
    # runs interleave batch by batch
    settings.SWEEP_BATCH_SIZE = 2
    made = _due_cases(buyer, seller)
    # 30 days: past the 5-business-day SLA even across the longest public holidays
    old = timezone.now() - timedelta(days=30)
    disputes = [dispute_for(buyer=buyer, seller=seller, opened_at=old) for _ in range(3)]

    # when two sweeps start at the same instant
    outcomes = run_together(list(pair))

    # then each case moved once: one event of its kind, and one payout where it is paid
    raise_unexpected(outcomes)
    for name, cases in made.items():
        kind, final = SWEEP_KINDS[name]
        for case in cases:
            case.refresh_from_db()
            counts = event_counts(case_id=case.public_id)
            assert counts[kind] == 1, (name, counts)
            assert case.state == final, (name, case.state)
            order = case.order
            if final == State.REFUNDED:
                assert_paid_once(order, key=f"refund:{case.public_id}", amount=case.amount)
            else:
                assert not Payout.objects.filter(order=order).exists()
    for dispute in disputes:
        counts = event_counts(dispute_id=dispute.public_id)
        for kind in (
            "dispute.statement_window_lapsed",
            "dispute.sla_target_passed",
            "dispute.sla_due_passed",
        ):
            assert counts[kind] == 1, (kind, counts)
    assert Dispute.objects.filter(state=DisputeState.OPEN).count() == len(disputes)
    assert not Payout.objects.exclude(status=PayoutStatus.SUCCEEDED).exists()
