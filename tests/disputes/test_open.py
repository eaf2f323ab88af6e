"""Opening a dispute (docs/rules.md, Disputes): who, on which cases, inside which window, once per
case."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from disputes.models import Dispute, DisputeState
from kernel.errors import (
    AmountExceedsRefundable,
    Duplicate,
    InvalidTransition,
    NotAllowed,
    ValidationFailed,
    WindowClosed,
)
from orders.models import Event
from refunds.models import ClosedReason, RefundCase
from refunds.models import State as CaseState
from refunds.services import refund_accept, refund_request, refund_withdraw
from tests.conftest import requires_postgres
from tests.disputes.factories import open_dispute, rejected_case
from tests.orders.factories import OrderFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_buyer_opens_a_dispute_on_a_rejected_case(buyer, seller):
    # given a case the seller rejected an hour ago
    opened_at = datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)
    case = rejected_case(buyer=buyer, seller=seller, closed_at=opened_at - timedelta(hours=1))

    # when the buyer opens a dispute asking for part of the money back
    dispute = open_dispute(case=case, now=opened_at, desired_amount="40.00")

    # then the case is escalated and the clocks run from the opening instant
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED
    assert dispute.state == DisputeState.OPEN
    assert dispute.desired_amount == Decimal("40.00")
    assert dispute.statement_by == opened_at + timedelta(hours=48)
    # Wed 4 Mar 2026: three business days on is Mon 9 Mar, five is Wed 11 Mar (end of day).
    assert dispute.decision_target == datetime(2026, 3, 9, 23, 59, 59, 999999, tzinfo=SHANGHAI)
    assert dispute.decision_due == datetime(2026, 3, 11, 23, 59, 59, 999999, tzinfo=SHANGHAI)
    # and both parties and staff are told, with what the notice needs
    event = Event.objects.get(dispute_id=dispute.public_id, kind="dispute.opened")
    assert event.case_id == case.public_id
    assert event.actor == buyer
    assert event.payload["notify"] == {"buyer": buyer.pk, "seller": seller.pk, "staff": True}
    assert event.payload["order_number"] == case.order.number
    assert event.payload["decision_due"] == dispute.decision_due.isoformat()


@pytest.mark.parametrize("closing", ["withdrawn", "offer_declined"])
def test_other_disputable_closings_can_be_disputed(buyer, seller, closing):
    # given a case the buyer withdrew / whose offer the buyer declined
    from refunds.services import refund_decline_offer, refund_offer

    now = datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), placed_at=now - timedelta(days=1))
    case = refund_request(
        order=order,
        buyer=buyer,
        reason="changed_mind",
        amount="59.90",
        now=now - timedelta(hours=3),
    )
    if closing == "withdrawn":
        case = refund_withdraw(case=case, actor=buyer, now=now - timedelta(hours=1))
    else:
        case = refund_offer(case=case, actor=seller, amount="10.00", now=now - timedelta(hours=2))
        case = refund_decline_offer(case=case, actor=buyer, now=now - timedelta(hours=1))
    assert case.closed_reason == closing

    # when the buyer disputes it
    dispute = open_dispute(case=case, now=now)

    # then it is open
    assert dispute.state == DisputeState.OPEN


def _closed_at_shanghai(buyer, seller):
    closed_at = datetime(2026, 3, 2, 22, 30, tzinfo=SHANGHAI)
    return rejected_case(buyer=buyer, seller=seller, closed_at=closed_at)


def test_dispute_window_open_one_second_before_it_ends(buyer, seller):
    # given a case rejected on Mon 2 Mar 2026 22:30 China time (window ends Wed 4 Mar 22:30)
    case = _closed_at_shanghai(buyer, seller)
    assert case.dispute_by == datetime(2026, 3, 4, 22, 30, tzinfo=SHANGHAI)

    # when the buyer files one second before the end
    with time_machine.travel(datetime(2026, 3, 4, 22, 29, 59, tzinfo=SHANGHAI), tick=False):
        dispute = open_dispute(case=case, now=None)

    # then it is accepted
    assert dispute.state == DisputeState.OPEN


def test_dispute_window_closed_one_second_after_it_ends(buyer, seller):
    # given the same case
    case = _closed_at_shanghai(buyer, seller)

    # when the buyer files one second after the end
    with (
        time_machine.travel(datetime(2026, 3, 4, 22, 30, 1, tzinfo=SHANGHAI), tick=False),
        pytest.raises(WindowClosed) as exc,
    ):
        open_dispute(case=case, now=None)

    # then it is refused naming the deadline in the marketplace zone and the buyer's (Berlin)
    assert "4 Mar 2026, 22:30 Asia/Shanghai" in exc.value.message
    assert "4 Mar 2026, 15:30 Europe/Berlin" in exc.value.message
    case.refresh_from_db()
    assert case.state == CaseState.CLOSED
    assert not Dispute.objects.exists()


def test_refused_on_an_open_case(buyer, order):
    # given a case still waiting for the seller
    case = refund_request(order=order, buyer=buyer, reason="changed_mind", amount="59.90")

    # when the buyer tries to dispute it, then it is refused
    with pytest.raises(InvalidTransition):
        open_dispute(case=case)
    assert not Dispute.objects.exists()


def test_refused_on_a_refunded_case(buyer, seller, order, django_capture_on_commit_callbacks):
    # given a case the seller accepted and the gateway paid
    case = refund_request(order=order, buyer=buyer, reason="changed_mind", amount="59.90")
    with django_capture_on_commit_callbacks(execute=True):
        refund_accept(case=case, actor=seller)
    case.refresh_from_db()
    assert case.state == CaseState.REFUNDED

    # when the buyer tries to dispute it, then it is refused
    with pytest.raises(InvalidTransition):
        open_dispute(case=case)


def test_refused_on_a_case_whose_dispute_was_lost(buyer, seller, staff):
    # given a dispute decided for the seller (the case is closed as dispute_lost, final)
    from tests.disputes.factories import decided, dispute_for

    dispute = decided(dispute_for(buyer=buyer, seller=seller), staff=staff, outcome="seller")
    case = RefundCase.objects.get(pk=dispute.case_id)
    assert case.closed_reason == ClosedReason.DISPUTE_LOST

    # when the buyer tries again, then it is a duplicate
    with pytest.raises(Duplicate):
        open_dispute(case=case)


def test_one_dispute_per_case(buyer, seller):
    # given a case already disputed
    case = rejected_case(buyer=buyer, seller=seller)
    open_dispute(case=case)

    # when the buyer opens a second one, then it is a duplicate
    with pytest.raises(Duplicate):
        open_dispute(case=case)
    assert Dispute.objects.count() == 1


def test_only_the_buyer_opens(buyer, seller):
    # given a rejected case
    case = rejected_case(buyer=buyer, seller=seller)

    # when the seller tries to open a dispute on it, then it is not theirs
    from disputes.services import dispute_open

    with pytest.raises(NotAllowed):
        dispute_open(
            case=case,
            buyer=seller,
            statement="x",
            contact_name="S",
            contact_email="s@example.com",
            contact_phone="",
            desired_amount="1.00",
        )


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("59.91", AmountExceedsRefundable),
        ("0", ValidationFailed),
        ("-1.00", ValidationFailed),
        ("1.001", ValidationFailed),
        ("", ValidationFailed),
    ],
)
def test_desired_amount_is_positive_and_within_refundable(buyer, seller, amount, error):
    case = rejected_case(buyer=buyer, seller=seller)
    with pytest.raises(error):
        open_dispute(case=case, desired_amount=amount)
    case.refresh_from_db()
    assert case.state == CaseState.CLOSED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("statement", "  "),
        ("contact_name", ""),
        ("contact_email", "not-an-email"),
        ("contact_phone", "call me"),
    ],
)
def test_form_fields_are_checked(buyer, seller, field, value):
    case = rejected_case(buyer=buyer, seller=seller)
    with pytest.raises(ValidationFailed) as exc:
        open_dispute(case=case, **{field: value})
    assert field in (exc.value.fields or {})


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_opens_make_one_dispute(buyer, seller):
    # given a rejected case
    case = rejected_case(buyer=buyer, seller=seller)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def open_once() -> None:
        try:
            barrier.wait()
            open_dispute(case=case)
            outcomes.append("opened")
        except Duplicate:
            outcomes.append("duplicate")
        finally:
            connection.close()

    # when the buyer submits twice at the same moment
    threads = [threading.Thread(target=open_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one dispute exists and the other request was told so
    assert sorted(outcomes) == ["duplicate", "opened"]
    assert Dispute.objects.filter(case=case).count() == 1
    assert Event.objects.filter(kind="dispute.opened").count() == 1
    assert Event.objects.filter(kind="refund.escalated").count() == 1


# --- one open case per order (docs/rules.md, Disputes) ------------------------------------------


def _rejected_then_refiled(buyer, seller) -> tuple[RefundCase, RefundCase]:
    """A case rejected an hour ago, and a newer request on the same order, still open."""
    now = timezone.now()
    older = rejected_case(
        buyer=buyer, seller=seller, closed_at=now - timedelta(hours=1), amount="20.00"
    )
    newer = refund_request(
        order=older.order,
        buyer=buyer,
        reason="changed_mind",
        amount="10.00",
        now=now - timedelta(minutes=30),
    )
    return older, newer


def _nothing_written(older: RefundCase) -> None:
    older.refresh_from_db()
    assert older.state == CaseState.CLOSED
    assert not Dispute.objects.exists()
    assert not Event.objects.filter(kind="refund.escalated").exists()


def test_refused_while_a_newer_case_on_the_order_is_open(buyer, seller):
    # given a rejected case and a newer request on the same order, still open
    older, _ = _rejected_then_refiled(buyer, seller)

    # when the buyer disputes the older case, then it is refused naming the newer request
    with pytest.raises(InvalidTransition) as exc:
        open_dispute(case=older, desired_amount="20.00")
    assert "newer refund request on this order is open" in exc.value.message
    # and nothing is written (the database's one-open-case constraint is never reached)
    _nothing_written(older)


def test_refused_while_another_case_on_the_order_is_in_dispute(buyer, seller):
    # given two rejected cases on one order, the older one disputed
    now = timezone.now()
    older = rejected_case(
        buyer=buyer, seller=seller, closed_at=now - timedelta(hours=3), amount="20.00"
    )
    newer = rejected_case(
        buyer=buyer,
        seller=seller,
        order=older.order,
        closed_at=now - timedelta(hours=1),
        amount="10.00",
    )
    open_dispute(case=older, desired_amount="20.00")

    # when the buyer disputes the newer one too, then it is refused: one is in dispute
    with pytest.raises(InvalidTransition) as exc:
        open_dispute(case=newer, desired_amount="10.00")
    assert "in dispute" in exc.value.message
    newer.refresh_from_db()
    assert newer.state == CaseState.CLOSED
    assert Dispute.objects.count() == 1


def test_api_answers_409_and_does_not_offer_the_dispute_while_a_newer_case_is_open(
    api, buyer, seller
):
    # given a rejected case and a newer open request on the same order
    older, newer = _rejected_then_refiled(buyer, seller)
    client = api(buyer)

    # then the older case does not offer `open-dispute`
    actions = client.get(f"/api/v1/refunds/{older.public_id}/").json()["actions"]
    assert "open-dispute" not in [a["action"] for a in actions]
    listed = {c["id"]: c["actions"] for c in client.get("/api/v1/refunds/").json()["results"]}
    assert "open-dispute" not in [a["action"] for a in listed[str(older.public_id)]]

    # when the buyer disputes it anyway, then 409 invalid_transition, nothing written
    response = client.post(
        "/api/v1/disputes/",
        {
            "refund": str(older.public_id),
            "statement": "The mug arrived cracked.",
            "contact_name": "Bea Buyer",
            "contact_email": "bea@example.com",
            "desired_amount": "20.00",
        },
        format="json",
    )
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "invalid_transition"
    assert "newer refund request" in response.json()["error"]["message"]
    _nothing_written(older)

    # and once the newer request is withdrawn, the older case may be disputed again
    refund_withdraw(case=newer, actor=buyer)
    actions = client.get(f"/api/v1/refunds/{older.public_id}/").json()["actions"]
    assert "open-dispute" in [a["action"] for a in actions]


def test_pages_explain_and_do_not_offer_the_dispute_while_a_newer_case_is_open(
    client, buyer, seller
):
    # given a rejected case and a newer open request on the same order
    older, _ = _rejected_then_refiled(buyer, seller)
    client.force_login(buyer)

    # then neither the order page nor the case page offers a dispute on the older case
    dispute_url = f"/refunds/{older.public_id}/dispute/"
    for url in (f"/orders/{older.order.number}/", f"/refunds/{older.public_id}/", "/orders/"):
        assert dispute_url not in client.get(url).content.decode(), url
    # and the dispute form says why
    assert "newer refund request on this order is open" in client.get(dispute_url).content.decode()

    # when the buyer posts the form anyway, then it is a form error and nothing is written
    response = client.post(
        dispute_url,
        {
            "contact_name": "Bea",
            "contact_email": "bea@example.com",
            "statement": "Broken.",
            "outcome": "full",
            "desired_amount": "",
        },
    )
    assert response.status_code == 400
    assert "newer refund request on this order is open" in response.content.decode()
    _nothing_written(older)
