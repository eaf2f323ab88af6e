"""Every case action through the API: who may, in which state, until which deadline (docs/rules.md,
Refund cases).

One test per forbidden transition. A refused action answers 409 `invalid_transition` (403
`permission_denied` for the other party's action, 404 for a stranger) and changes nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from kernel import windows
from orders.models import Event
from payouts.models import GatewayRefund, Payout
from refunds import services
from refunds.models import RMA_ALPHABET, ClosedReason, RefundCase, State
from tests.refunds.factories import SECOND, file_refund, reload


def act(api, user, case, action, data=None):
    return api(user).post(f"/api/v1/refunds/{case.public_id}/{action}/", data or {}, format="json")


@pytest.fixture
def case(order):
    """A request for 20.00 with nothing to send back."""
    return file_refund(order, amount="20.00")


@pytest.fixture
def return_case(order):
    """A request for 20.00 where the item goes back."""
    return file_refund(order, amount="20.00", return_item=True)


@pytest.fixture
def offered(case, seller):
    return services.refund_offer(case=case, actor=seller, amount="10.00")


@pytest.fixture
def awaiting_return(return_case, seller):
    return services.refund_accept(case=return_case, actor=seller)


@pytest.fixture
def return_shipped(awaiting_return, buyer):
    return services.refund_ship_return(
        case=awaiting_return, actor=buyer, carrier="DHL", tracking_number="JD0001"
    )


def snapshot(case):
    fresh = reload(case)
    return (
        fresh.state,
        fresh.closed_reason,
        fresh.updated_at,
        Event.objects.filter(case_id=case.public_id).count(),
        Payout.objects.count(),
    )


def assert_refused(response, status, code, case, before):
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert snapshot(case) == before


# --- allowed ----------------------------------------------------------------------------------


def test_seller_accepts_and_the_refund_is_paid_once(
    api, seller, case, order, django_capture_on_commit_callbacks
):
    # given a request for 20.00 with no return
    # when the seller accepts (and the transaction commits)
    with django_capture_on_commit_callbacks(execute=True):
        response = act(api, seller, case, "accept")

    # then the refund is approved, then paid to the original card exactly once
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "refund_pending"
    assert response.json()["approved_amount"] == "20.00"
    fresh = reload(case)
    assert fresh.state == State.REFUNDED
    assert fresh.refunded_amount == Decimal("20.00")
    paid = GatewayRefund.objects.filter(payment_reference=order.payment_reference)
    assert [(g.amount, g.currency) for g in paid] == [(Decimal("20.00"), "USD")]


def test_seller_accepts_a_return_and_an_rma_is_issued(api, seller, return_case):
    # given a request where the item goes back
    # when the seller accepts
    response = act(api, seller, return_case, "accept")

    # then the buyer has until the end of the 7th China day to ship it, with an RMA number
    assert response.status_code == 200
    data = response.json()
    fresh = reload(return_case)
    assert data["state"] == "awaiting_return"
    assert re.fullmatch(f"RMA-[{RMA_ALPHABET}]{{8}}", data["return_number"])
    assert data["return_number"] == fresh.return_number
    assert fresh.return_by == windows.return_by(rma_issued_at=fresh.rma_issued_at)
    assert windows.to_marketplace(fresh.return_by).time().isoformat() == "23:59:59.999999"
    assert Payout.objects.count() == 0


def test_seller_offers_part_and_the_buyer_has_48_hours(api, seller, case):
    response = act(api, seller, case, "offer", {"amount": "12.50"})

    assert response.status_code == 200
    data = response.json()
    fresh = reload(case)
    assert data["state"] == "offer_made"
    assert data["offer_amount"] == "12.50"
    assert fresh.offer_by == fresh.answered_at + timedelta(hours=48)


def test_buyer_accepts_the_offer(api, buyer, offered):
    response = act(api, buyer, offered, "accept-offer")

    assert response.status_code == 200
    assert response.json()["state"] == "refund_pending"
    assert response.json()["approved_amount"] == "10.00"
    assert Payout.objects.get().amount == Decimal("10.00")


def test_buyer_declines_the_offer_and_may_dispute(api, buyer, offered):
    response = act(api, buyer, offered, "decline-offer")

    assert response.status_code == 200
    data = response.json()
    fresh = reload(offered)
    assert data["state"] == "closed"
    assert data["closed_reason"] == "offer_declined"
    assert fresh.dispute_by == fresh.closed_at + timedelta(hours=48)
    assert [a["action"] for a in data["actions"]] == ["open-dispute"]


def test_seller_rejects_with_a_reason(api, seller, case):
    response = act(api, seller, case, "reject", {"reason": "Used item"})

    assert response.status_code == 200
    data = response.json()
    assert data["state"] == "closed"
    assert data["closed_reason"] == "rejected"
    assert data["reject_reason"] == "Used item"
    assert data["dispute_by"] is not None
    assert data["timeline"][-1]["kind"] == "refund.rejected"
    assert data["timeline"][-1]["note"] == "Used item"
    assert data["timeline"][-1]["actor"] == {"name": "Sam Seller", "role": "seller"}


@pytest.mark.parametrize("state_fixture", ["case", "offered", "awaiting_return"])
def test_buyer_withdraws(api, buyer, state_fixture, request):
    target = request.getfixturevalue(state_fixture)

    response = act(api, buyer, target, "withdraw")

    assert response.status_code == 200
    assert response.json()["state"] == "closed"
    assert response.json()["closed_reason"] == "withdrawn"


def test_buyer_ships_the_return(api, buyer, awaiting_return):
    response = act(
        api,
        buyer,
        awaiting_return,
        "ship-return",
        {"carrier": "DHL", "tracking_number": "JD014600006281230704"},
    )

    assert response.status_code == 200
    data = response.json()
    fresh = reload(awaiting_return)
    assert data["state"] == "return_shipped"
    assert data["return_shipment"]["tracking_number"] == "JD014600006281230704"
    assert fresh.confirm_by == windows.confirm_by(return_shipped_at=fresh.return_shipped_at)


def test_seller_confirms_the_return_and_the_refund_is_paid(
    api, seller, return_shipped, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = act(api, seller, return_shipped, "confirm-return")

    assert response.status_code == 200
    assert response.json()["state"] == "refund_pending"
    assert reload(return_shipped).state == State.REFUNDED
    assert GatewayRefund.objects.filter(payment_reference=order.payment_reference).count() == 1


# --- forbidden: deadlines passed (before the sweep has run) -------------------------------------


def test_seller_cannot_accept_after_respond_by_even_before_the_sweep(api, seller, case):
    before = snapshot(case)
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        response = act(api, seller, case, "accept")
    assert_refused(response, 409, "invalid_transition", case, before)


def test_seller_cannot_reject_after_respond_by(api, seller, case):
    before = snapshot(case)
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        response = act(api, seller, case, "reject", {"reason": "Too late"})
    assert_refused(response, 409, "invalid_transition", case, before)


def test_seller_cannot_offer_after_respond_by(api, seller, case):
    before = snapshot(case)
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        response = act(api, seller, case, "offer", {"amount": "5.00"})
    assert_refused(response, 409, "invalid_transition", case, before)


def test_seller_may_still_answer_one_second_before_respond_by(api, seller, case):
    with time_machine.travel(case.respond_by - SECOND, tick=False):
        response = act(api, seller, case, "reject", {"reason": "Just in time"})
    assert response.status_code == 200


def test_buyer_cannot_withdraw_after_respond_by(api, buyer, case):
    before = snapshot(case)
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        response = act(api, buyer, case, "withdraw")
    assert_refused(response, 409, "invalid_transition", case, before)


def test_buyer_cannot_accept_the_offer_after_offer_by(api, buyer, offered):
    before = snapshot(offered)
    with time_machine.travel(offered.offer_by + SECOND, tick=False):
        response = act(api, buyer, offered, "accept-offer")
    assert_refused(response, 409, "invalid_transition", offered, before)


def test_buyer_cannot_decline_the_offer_after_offer_by(api, buyer, offered):
    before = snapshot(offered)
    with time_machine.travel(offered.offer_by + SECOND, tick=False):
        response = act(api, buyer, offered, "decline-offer")
    assert_refused(response, 409, "invalid_transition", offered, before)


def test_buyer_cannot_ship_the_return_after_return_by(api, buyer, awaiting_return):
    before = snapshot(awaiting_return)
    with time_machine.travel(awaiting_return.return_by + SECOND, tick=False):
        response = act(
            api,
            buyer,
            awaiting_return,
            "ship-return",
            {"carrier": "DHL", "tracking_number": "LATE1"},
        )
    assert_refused(response, 409, "invalid_transition", awaiting_return, before)


def test_buyer_cannot_withdraw_a_return_after_return_by(api, buyer, awaiting_return):
    before = snapshot(awaiting_return)
    with time_machine.travel(awaiting_return.return_by + SECOND, tick=False):
        response = act(api, buyer, awaiting_return, "withdraw")
    assert_refused(response, 409, "invalid_transition", awaiting_return, before)


def test_seller_cannot_confirm_after_confirm_by(api, seller, return_shipped):
    before = snapshot(return_shipped)
    with time_machine.travel(return_shipped.confirm_by + SECOND, tick=False):
        response = act(api, seller, return_shipped, "confirm-return")
    assert_refused(response, 409, "invalid_transition", return_shipped, before)


# --- forbidden: wrong state -------------------------------------------------------------------


def test_accepting_twice_is_refused(api, seller, case):
    assert act(api, seller, case, "accept").status_code == 200
    before = snapshot(case)

    response = act(api, seller, case, "accept")

    assert_refused(response, 409, "invalid_transition", case, before)
    assert Payout.objects.count() == 1


def test_seller_cannot_reject_an_offer_already_made(api, seller, offered):
    before = snapshot(offered)
    response = act(api, seller, offered, "reject", {"reason": "Changed my mind"})
    assert_refused(response, 409, "invalid_transition", offered, before)


def test_seller_cannot_offer_twice(api, seller, offered):
    before = snapshot(offered)
    response = act(api, seller, offered, "offer", {"amount": "5.00"})
    assert_refused(response, 409, "invalid_transition", offered, before)


def test_buyer_cannot_accept_an_offer_that_was_never_made(api, buyer, case):
    before = snapshot(case)
    response = act(api, buyer, case, "accept-offer")
    assert_refused(response, 409, "invalid_transition", case, before)


def test_buyer_cannot_ship_a_return_nobody_asked_for(api, buyer, case):
    before = snapshot(case)
    response = act(api, buyer, case, "ship-return", {"carrier": "DHL", "tracking_number": "X1"})
    assert_refused(response, 409, "invalid_transition", case, before)


def test_seller_cannot_confirm_a_return_not_yet_shipped(api, seller, awaiting_return):
    before = snapshot(awaiting_return)
    response = act(api, seller, awaiting_return, "confirm-return")
    assert_refused(response, 409, "invalid_transition", awaiting_return, before)


def test_buyer_cannot_withdraw_once_the_return_is_shipped(api, buyer, return_shipped):
    before = snapshot(return_shipped)
    response = act(api, buyer, return_shipped, "withdraw")
    assert_refused(response, 409, "invalid_transition", return_shipped, before)


def test_buyer_cannot_withdraw_a_closed_case(api, buyer, seller, case):
    services.refund_reject(case=case, actor=seller, reason="No")
    before = snapshot(case)
    response = act(api, buyer, case, "withdraw")
    assert_refused(response, 409, "invalid_transition", case, before)


def test_seller_cannot_accept_a_withdrawn_case(api, buyer, seller, case):
    services.refund_withdraw(case=case, actor=buyer)
    before = snapshot(case)
    response = act(api, seller, case, "accept")
    assert_refused(response, 409, "invalid_transition", case, before)


# --- forbidden: wrong party -------------------------------------------------------------------


def test_buyer_calling_accept_is_403(api, buyer, case):
    before = snapshot(case)
    response = act(api, buyer, case, "accept")
    assert_refused(response, 403, "permission_denied", case, before)


def test_buyer_calling_offer_without_a_body_is_still_403(api, buyer, case):
    before = snapshot(case)
    response = act(api, buyer, case, "offer")
    assert_refused(response, 403, "permission_denied", case, before)


def test_seller_calling_withdraw_is_403(api, seller, case):
    before = snapshot(case)
    response = act(api, seller, case, "withdraw")
    assert_refused(response, 403, "permission_denied", case, before)


def test_seller_calling_accept_offer_is_403(api, seller, offered):
    before = snapshot(offered)
    response = act(api, seller, offered, "accept-offer")
    assert_refused(response, 403, "permission_denied", offered, before)


def test_seller_shipping_the_return_is_403(api, seller, awaiting_return):
    before = snapshot(awaiting_return)
    response = act(
        api, seller, awaiting_return, "ship-return", {"carrier": "DHL", "tracking_number": "X"}
    )
    assert_refused(response, 403, "permission_denied", awaiting_return, before)


def test_staff_are_not_a_party_of_the_case(api, staff, case):
    before = snapshot(case)
    response = act(api, staff, case, "accept")
    assert_refused(response, 403, "permission_denied", case, before)


def test_other_seller_gets_404(api, other_seller, case):
    before = snapshot(case)
    response = act(api, other_seller, case, "accept")
    assert_refused(response, 404, "not_found", case, before)


def test_other_buyer_gets_404(api, other_buyer, case):
    before = snapshot(case)
    response = act(api, other_buyer, case, "withdraw")
    assert_refused(response, 404, "not_found", case, before)
    assert api(other_buyer).get(f"/api/v1/refunds/{case.public_id}/").status_code == 404


def test_anonymous_gets_401(api, case):
    response = act(api, None, case, "accept")
    assert response.status_code == 401


def test_an_id_that_is_not_a_uuid_is_404(api, buyer):
    response = api(buyer).get("/api/v1/refunds/not-a-uuid/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- forbidden: bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["20.00", "25.00", "0", "1.001"])
def test_offer_must_be_a_valid_amount_below_the_request(api, seller, case, amount):
    before = snapshot(case)
    response = act(api, seller, case, "offer", {"amount": amount})
    assert_refused(response, 400, "validation_error", case, before)
    assert "amount" in response.json()["error"]["fields"]


def test_reject_needs_a_reason(api, seller, case):
    before = snapshot(case)
    response = act(api, seller, case, "reject", {"reason": "   "})
    assert_refused(response, 400, "validation_error", case, before)


def test_ship_return_needs_carrier_and_tracking(api, buyer, awaiting_return):
    before = snapshot(awaiting_return)
    response = act(api, buyer, awaiting_return, "ship-return", {"carrier": "DHL"})
    assert_refused(response, 400, "validation_error", awaiting_return, before)
    assert "tracking_number" in response.json()["error"]["fields"]


# --- return numbers ---------------------------------------------------------------------------


def test_return_numbers_are_unique_and_issued_only_when_a_return_is_needed(api, buyer, seller):
    from tests.orders.factories import OrderFactory

    # given 30 accepted requests, half of them with a return
    numbers = []
    for index in range(30):
        order = OrderFactory(buyer=buyer, shop=seller.shops.get())
        case = file_refund(order, amount="5.00", return_item=index % 2 == 0)
        case = services.refund_accept(case=case, actor=seller)
        numbers.append(reload(case).issued_return_number)

    # then those with a return have a unique RMA-XXXXXXXX, the others none
    issued = numbers[::2]
    assert all(re.fullmatch(f"RMA-[{RMA_ALPHABET}]{{8}}", n) for n in issued)
    assert len(set(issued)) == 15
    assert numbers[1::2] == [None] * 15
    assert RefundCase.objects.filter(return_item=False, return_number__isnull=False).count() == 0


def test_closed_reason_is_recorded(buyer, seller, case):
    services.refund_withdraw(case=case, actor=buyer)
    assert reload(case).closed_reason == ClosedReason.WITHDRAWN
