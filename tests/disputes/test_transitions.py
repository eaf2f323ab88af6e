"""The dispute state machine through its services (docs/rules.md, Dispute states): one test per
rule."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from disputes import services
from disputes.models import DisputeState
from kernel.errors import Duplicate, InvalidTransition, NotAllowed, ValidationFailed
from orders.models import Event
from refunds.models import State as CaseState
from tests.disputes.factories import decided, dispute_for, with_statement
from tests.orders.factories import UserFactory


@pytest.fixture
def dispute(buyer, seller):
    return dispute_for(buyer=buyer, seller=seller)


def last_event(dispute):
    return Event.objects.filter(dispute_id=dispute.public_id).order_by("-id").first()


def test_start_review_assigns_the_reviewer(dispute, staff):
    dispute = services.dispute_start_review(dispute=dispute, staff=staff)
    assert (dispute.state, dispute.assigned_to) == (DisputeState.UNDER_REVIEW, staff)
    event = last_event(dispute)
    assert (event.kind, event.from_state, event.to_state) == (
        "dispute.review_started",
        "open",
        "under_review",
    )


def test_start_review_twice_is_refused(dispute, staff):
    services.dispute_start_review(dispute=dispute, staff=staff)
    with pytest.raises(InvalidTransition):
        services.dispute_start_review(dispute=dispute, staff=staff)


def test_start_review_keeps_an_existing_assignment(dispute, staff):
    colleague = UserFactory(email="colleague@example.com", is_staff=True)
    services.dispute_assign(dispute=dispute, staff=staff, assignee=colleague)
    dispute = services.dispute_start_review(dispute=dispute, staff=staff)
    assert dispute.assigned_to == colleague


def test_assign_only_to_staff(dispute, staff, buyer):
    with pytest.raises(ValidationFailed):
        services.dispute_assign(dispute=dispute, staff=staff, assignee=buyer)


def test_unassign(dispute, staff):
    services.dispute_assign(dispute=dispute, staff=staff, assignee=staff)
    dispute = services.dispute_assign(dispute=dispute, staff=staff, assignee=None)
    assert dispute.assigned_to is None
    assert Event.objects.filter(kind="dispute.assigned").count() == 2


def test_the_party_asked_answers_and_review_resumes(dispute, buyer, seller, staff):
    # given staff asked the buyer for a photo
    services.dispute_request_info(
        dispute=dispute, staff=staff, party="buyer", question="A photo of the box, please."
    )

    # when the seller and staff write, the question stays open
    services.dispute_post_message(dispute=dispute, author=seller, body="I have nothing to add.")
    services.dispute_post_message(dispute=dispute, author=staff, body="Waiting for the buyer.")
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.INFO_REQUESTED

    # when the buyer answers
    services.dispute_post_message(dispute=dispute, author=buyer, body="Attached.")

    # then the dispute is back under review, the question cleared, staff told
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.UNDER_REVIEW
    assert (dispute.info_party, dispute.info_question, dispute.info_requested_at) == ("", "", None)
    event = last_event(dispute)
    assert event.kind == "dispute.info_answered"
    assert event.payload["notify"] == {"staff": True}
    assert event.payload["question"] == "A photo of the box, please."


def test_messages_tell_the_other_side(dispute, buyer, seller, staff):
    services.dispute_post_message(dispute=dispute, author=buyer, body="Hello")
    assert last_event(dispute).payload["notify"] == {"seller": seller.pk}
    services.dispute_post_message(dispute=dispute, author=staff, body="Hello both")
    assert last_event(dispute).payload["notify"] == {"buyer": buyer.pk, "seller": seller.pk}


def test_a_stranger_cannot_write(dispute, other_buyer):
    with pytest.raises(NotAllowed):
        services.dispute_post_message(dispute=dispute, author=other_buyer, body="Hi")


def test_request_info_needs_a_party_and_a_question(dispute, staff):
    with pytest.raises(ValidationFailed):
        services.dispute_request_info(dispute=dispute, staff=staff, party="courier", question="?")
    with pytest.raises(ValidationFailed):
        services.dispute_request_info(dispute=dispute, staff=staff, party="buyer", question=" ")


def test_late_statement_is_accepted_while_undecided(buyer, seller):
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=timezone.now() - timedelta(hours=72)
    )
    dispute = with_statement(dispute)
    assert dispute.seller_statement_at is not None


def test_statement_after_the_decision_is_refused(buyer, seller, staff):
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=timezone.now() - timedelta(hours=49)
    )
    services.dispute_decide(dispute=dispute, staff=staff, outcome="seller", rationale="Silent.")
    with pytest.raises(InvalidTransition):
        with_statement(dispute)


def test_statement_only_once(dispute):
    with_statement(dispute)
    with pytest.raises(Duplicate):
        with_statement(dispute)


def test_decide_from_info_requested_clears_the_question(dispute, staff):
    with_statement(dispute)
    services.dispute_request_info(dispute=dispute, staff=staff, party="seller", question="?")
    dispute = services.dispute_decide(
        dispute=dispute, staff=staff, outcome="seller", rationale="Enough on file."
    )
    assert dispute.state == DisputeState.RESOLVED_SELLER
    assert dispute.info_party == ""
    assert dispute.case.closed_reason == "dispute_lost"


def test_decide_for_the_buyer_defaults_to_the_amount_asked(buyer, seller, staff):
    dispute = decided(dispute_for(buyer=buyer, seller=seller, desired_amount="33.30"), staff=staff)
    assert dispute.amount == Decimal("33.30")
    assert dispute.case.state == CaseState.REFUND_PENDING
    assert dispute.case.approved_amount == dispute.amount
    assert dispute.case.payout is not None
    assert dispute.case.payout.idempotency_key == f"refund:{dispute.case.public_id}"


def test_decide_for_the_buyer_may_exceed_the_amount_asked_up_to_refundable(buyer, seller, staff):
    dispute = decided(
        dispute_for(buyer=buyer, seller=seller, desired_amount="10.00"), staff=staff, amount="59.90"
    )
    assert dispute.amount == Decimal("59.90")


def test_decide_for_the_seller_takes_no_amount(dispute, staff):
    with_statement(dispute)
    with pytest.raises(ValidationFailed):
        services.dispute_decide(
            dispute=dispute, staff=staff, outcome="seller", amount="5.00", rationale="x"
        )


def test_decide_needs_a_known_outcome(dispute, staff):
    with_statement(dispute)
    with pytest.raises(ValidationFailed):
        services.dispute_decide(dispute=dispute, staff=staff, outcome="split", rationale="x")


def test_staff_who_is_the_buyer_cannot_decide(seller, staff):
    # a staff account that bought the item is a party, not a judge
    dispute = with_statement(dispute_for(buyer=staff, seller=seller))
    with pytest.raises(NotAllowed):
        services.dispute_decide(dispute=dispute, staff=staff, outcome="buyer", rationale="Mine.")


def test_withdraw_closes_the_case_for_good(dispute, buyer):
    dispute = services.dispute_withdraw(dispute=dispute, buyer=buyer)
    assert dispute.state == DisputeState.WITHDRAWN
    assert (dispute.case.state, dispute.case.closed_reason) == ("closed", "dispute_withdrawn")
    assert dispute.case.dispute_by is None
    assert last_event(dispute).payload["notify"] == {
        "buyer": buyer.pk,
        "seller": dispute.case.order.shop.owner_id,
    }


def test_withdraw_twice_is_refused(dispute, buyer):
    services.dispute_withdraw(dispute=dispute, buyer=buyer)
    with pytest.raises(InvalidTransition):
        services.dispute_withdraw(dispute=dispute, buyer=buyer)


def test_decide_after_withdrawal_is_refused(dispute, buyer, staff):
    with_statement(dispute)
    services.dispute_withdraw(dispute=dispute, buyer=buyer)
    with pytest.raises(InvalidTransition):
        services.dispute_decide(dispute=dispute, staff=staff, outcome="buyer", rationale="x")


def test_every_transition_is_in_the_audit_trail(dispute, buyer, seller, staff):
    with_statement(dispute)
    services.dispute_start_review(dispute=dispute, staff=staff)
    services.dispute_request_info(dispute=dispute, staff=staff, party="seller", question="?")
    services.dispute_post_message(dispute=dispute, author=seller, body="Answer.")
    services.dispute_decide(dispute=dispute, staff=staff, outcome="seller", rationale="Fine.")
    trail = list(
        Event.objects.filter(dispute_id=dispute.public_id)
        .order_by("id")
        .values_list("kind", "from_state", "to_state")
    )
    assert trail == [
        ("dispute.opened", "", "open"),
        ("dispute.statement_added", "open", "open"),
        ("dispute.review_started", "open", "under_review"),
        ("dispute.info_requested", "under_review", "info_requested"),
        ("dispute.info_answered", "info_requested", "under_review"),
        ("dispute.decided", "under_review", "resolved_seller"),
    ]
    assert set(
        Event.objects.filter(dispute_id=dispute.public_id).values_list("case_id", flat=True)
    ) == {dispute.case.public_id}
