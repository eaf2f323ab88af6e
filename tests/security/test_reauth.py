"""A money decision in the staff desk asks for the password again when the last sign-in or
re-entry is over 15 minutes old (docs/architecture.md, Accounts and security)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from disputes.models import DisputeState
from payouts.models import PayoutStatus
from refunds.models import State
from tests.disputes.factories import dispute_for, with_statement
from tests.orders.test_admin import failed_payout
from tests.refunds.factories import file_refund

PASSWORD = "correct horse battery staple"
EDGE = timedelta(minutes=15)
SECOND = timedelta(seconds=1)


@pytest.fixture
def start():
    return timezone.now()


@pytest.fixture
def desk(staff, start) -> Client:
    client = Client()
    with time_machine.travel(start, tick=False):
        client.force_login(staff)  # signs in: the password was given at `start`
    return client


def decide(desk: Client, dispute):  # type: ignore[no-untyped-def]
    return desk.post(
        reverse("admin:disputes_dispute_decide", args=[dispute.pk]),
        {"outcome": "buyer", "amount": "30.00", "rationale": "The photos show the crack."},
    )


def asks_for_the_password(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and response["Location"].startswith("/admin/reauth/")


def test_a_decision_14_59_after_sign_in_goes_through(desk, start, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    with time_machine.travel(start + EDGE - SECOND, tick=False):
        response = decide(desk, dispute)

    assert not asks_for_the_password(response)
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.RESOLVED_BUYER


def test_a_decision_15_01_after_sign_in_asks_for_the_password_first(desk, start, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    with time_machine.travel(start + EDGE + SECOND, tick=False):
        # when staff decide with a sign-in older than 15 minutes
        response = decide(desk, dispute)
        # then they are asked for the password, and nothing was decided
        assert asks_for_the_password(response)
        dispute.refresh_from_db()
        assert dispute.state != DisputeState.RESOLVED_BUYER
        # and the decide form itself is not shown either
        assert asks_for_the_password(
            desk.get(reverse("admin:disputes_dispute_decide", args=[dispute.pk]))
        )

        # when they give a wrong password, then they are asked again
        wrong = desk.post(response["Location"], {"password": "not it"})
        assert wrong.status_code == 200 and wrong.context["form"].errors["password"]

        # when they give it, then they are sent back to the decision, which now goes through
        again = desk.post(response["Location"], {"password": PASSWORD})
        assert again.status_code == 302
        assert again["Location"] == reverse("admin:disputes_dispute_decide", args=[dispute.pk])
        assert not asks_for_the_password(decide(desk, dispute))
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.RESOLVED_BUYER


def test_a_re_entry_starts_the_15_minutes_again(desk, start, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    reentered = start + timedelta(minutes=20)
    with time_machine.travel(reentered, tick=False):
        desk.post(reverse("admin:reauth"), {"password": PASSWORD})
    with time_machine.travel(reentered + EDGE - SECOND, tick=False):
        assert not asks_for_the_password(decide(desk, dispute))


@pytest.mark.parametrize("action", ["retry_failed", "cancel_failed"])
def test_payout_retry_and_cancel_ask_for_the_password_after_15_minutes(
    desk, start, order, settings, action
):
    payout = failed_payout(order, settings)
    url = reverse("admin:payouts_payout_changelist")
    data = {"action": action, "_selected_action": [payout.pk], "index": 0}

    with time_machine.travel(start + EDGE + SECOND, tick=False):
        response = desk.post(url, data)
    assert asks_for_the_password(response)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.FAILED

    with time_machine.travel(start + EDGE - SECOND, tick=False):
        assert not asks_for_the_password(desk.post(url, data))
    payout.refresh_from_db()
    assert payout.status != PayoutStatus.FAILED


@pytest.mark.parametrize("action", ["apply_due_deadlines", "run_deadline_sweep"])
def test_applying_deadlines_from_the_desk_asks_for_the_password_after_15_minutes(
    client, staff, order, action
):
    # given a request whose seller let respond_by pass (an auto-accept pays the buyer)
    case = file_refund(order, amount="20.00")
    signed_in = case.respond_by + SECOND
    with time_machine.travel(signed_in, tick=False):
        client.force_login(staff)
    data = {"action": action, "_selected_action": [case.pk]}
    url = reverse("admin:refunds_refundcase_changelist")

    with time_machine.travel(signed_in + EDGE + SECOND, tick=False):
        assert asks_for_the_password(client.post(url, data))
    case.refresh_from_db()
    assert case.state == State.REQUESTED
