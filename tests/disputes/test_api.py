"""The disputes JSON API (docs/api.md, Disputes): shapes, who may see and do what, error codes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from disputes.models import DisputeState
from refunds.models import State as CaseState
from tests.disputes.factories import decided, dispute_for, open_body, rejected_case, with_statement
from tests.orders.factories import UserFactory

LIST = "/api/v1/disputes/"


def detail(dispute) -> str:
    return f"/api/v1/disputes/{dispute.public_id}/"


def action(dispute, name: str) -> str:
    return f"/api/v1/disputes/{dispute.public_id}/{name}/"


# --- opening ----------------------------------------------------------------------------------


def test_buyer_opens_a_dispute(api, buyer, seller):
    # given a rejected case
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=1))

    # when the buyer posts the dispute form
    response = api(buyer).post(LIST, open_body(case, desired_amount="25.50"), format="json")

    # then it is created with its deadlines in UTC and the case is escalated
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "open"
    assert body["refund"] == str(case.public_id)
    assert body["order"] == case.order.number
    assert body["desired_amount"] == "25.50"
    assert body["decision_due"].endswith("Z")
    assert body["decision_target"] < body["decision_due"]
    assert body["outcome"] is None and body["amount"] is None and body["rationale"] is None
    assert body["actions"] == ["message", "evidence", "withdraw"]
    assert response["Location"] == f"/api/v1/disputes/{body['id']}/"
    case.refresh_from_db()
    assert case.state == CaseState.ESCALATED


def test_opening_someone_elses_case_is_not_found(api, buyer, seller, other_buyer):
    case = rejected_case(buyer=buyer, seller=seller)
    response = api(other_buyer).post(LIST, open_body(case), format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_seller_opening_is_forbidden(api, buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller)
    response = api(seller).post(LIST, open_body(case), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_second_dispute_on_a_case_is_a_duplicate(api, buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller)
    assert api(buyer).post(LIST, open_body(case), format="json").status_code == 201
    response = api(buyer).post(LIST, open_body(case), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"


def test_amount_over_refundable_is_refused(api, buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller)
    response = api(buyer).post(LIST, open_body(case, desired_amount="60.00"), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"


def test_window_closed_is_named(api, buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller, closed_at=timezone.now() - timedelta(hours=49))
    response = api(buyer).post(LIST, open_body(case), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "window_closed"
    assert "Asia/Shanghai" in error["message"] and "Europe/Berlin" in error["message"]


def test_unknown_fields_and_missing_fields_are_validation_errors(api, buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller)
    body = open_body(case, surprise=1)
    del body["statement"]
    response = api(buyer).post(LIST, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"statement", "surprise"}


def test_anonymous_is_not_authenticated(api, buyer, seller):
    assert api(None).get(LIST).status_code == 401


# --- reading ----------------------------------------------------------------------------------


def test_parties_and_staff_see_the_detail_others_do_not(
    api, buyer, seller, staff, other_buyer, other_seller
):
    dispute = dispute_for(buyer=buyer, seller=seller)
    for user in (buyer, seller, staff):
        response = api(user).get(detail(dispute))
        assert response.status_code == 200, user
        assert response.json()["id"] == str(dispute.public_id)
    for user in (other_buyer, other_seller):
        response = api(user).get(detail(dispute))
        assert response.status_code == 404, user
        assert response.json()["error"]["code"] == "not_found"
    assert api(buyer).get("/api/v1/disputes/not-a-uuid/").status_code == 404


def test_detail_shape(api, buyer, seller, staff):
    # given a dispute with a transcript, a statement, a question and messages
    from disputes import services
    from orders.services import message_post_on_order

    case = rejected_case(buyer=buyer, seller=seller)
    message_post_on_order(order=case.order, author=buyer, body="Hello, the mug is cracked.")
    from tests.disputes.factories import open_dispute

    dispute = with_statement(open_dispute(case=case))
    services.dispute_request_info(
        dispute=dispute, staff=staff, party="buyer", question="Please send a photo of the box."
    )
    services.dispute_post_message(dispute=dispute, author=staff, body="We are looking at it.")

    # when the seller reads it
    body = api(seller).get(detail(dispute)).json()

    # then every field of the contract is there
    for key in (
        "id",
        "refund",
        "state",
        "decision_target",
        "decision_due",
        "outcome",
        "amount",
        "rationale",
        "statement_by",
        "seller_statement",
        "info_party",
        "info_question",
        "messages",
        "transcript",
        "evidence",
        "statement",
    ):
        assert key in body, key
    assert body["state"] == "info_requested"
    assert body["info_party"] == "buyer"
    assert body["info_question"] == "Please send a photo of the box."
    assert body["seller_statement"] == "The buyer used the mug for a week."
    assert [m["role"] for m in body["transcript"]] == ["buyer"]
    assert body["messages"][0]["role"] == "staff"
    assert body["messages"][0]["author"] == {"name": "Marketplace staff"}
    # the buyer's contact details are not the seller's business
    assert body["contact"] is None
    assert api(buyer).get(detail(dispute)).json()["contact"]["email"] == buyer.email
    assert body["actions"] == ["message", "evidence"]


def test_list_is_filtered_by_party_and_state(api, buyer, seller, other_buyer, staff):
    mine = dispute_for(buyer=buyer, seller=seller)
    theirs = dispute_for(buyer=other_buyer, seller=seller)
    decided(theirs, staff=staff, outcome="seller")

    ids = lambda response: [d["id"] for d in response.json()["results"]]  # noqa: E731
    assert ids(api(buyer).get(LIST)) == [str(mine.public_id)]
    assert set(ids(api(seller).get(LIST))) == {str(mine.public_id), str(theirs.public_id)}
    assert ids(api(staff).get(LIST, {"state": "resolved_seller"})) == [str(theirs.public_id)]
    assert ids(api(seller).get(LIST, {"state": "open"})) == [str(mine.public_id)]
    response = api(seller).get(LIST, {"state": "nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["state"]


@pytest.mark.parametrize("n", [1, 3])
def test_list_query_count_is_constant(api, seller, staff, n):
    for _ in range(n * 4):
        dispute_for(buyer=UserFactory(), seller=seller)
    client = api(staff)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)
    assert response.status_code == 200
    assert len(response.json()["results"]) == n * 4
    # the count and the page; nothing per row
    assert len(queries) == 2, [q["sql"] for q in queries]


@pytest.mark.parametrize("n", [1, 10])
def test_detail_query_count_is_constant(api, buyer, seller, staff, n):
    from disputes import services
    from orders.services import message_post_on_order

    dispute = dispute_for(buyer=buyer, seller=seller)
    for i in range(n):
        message_post_on_order(order=dispute.case.order, author=seller, body=f"chat {i}")
        services.dispute_post_message(dispute=dispute, author=buyer, body=f"dispute {i}")
    client = api(staff)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(detail(dispute)).status_code == 200
    # dispute (with case, order, parties), messages, transcript, evidence
    assert len(queries) == 4, [q["sql"] for q in queries]


# --- forbidden actions: one test each ----------------------------------------------------------


def test_decide_an_already_decided_dispute_is_a_conflict(api, buyer, seller, staff):
    dispute = decided(dispute_for(buyer=buyer, seller=seller), staff=staff, outcome="seller")
    response = api(staff).post(
        action(dispute, "decide"),
        {"outcome": "buyer", "rationale": "Changed my mind."},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"


def test_withdraw_after_decision_is_a_conflict(api, buyer, seller, staff):
    dispute = decided(dispute_for(buyer=buyer, seller=seller), staff=staff, outcome="seller")
    response = api(buyer).post(action(dispute, "withdraw"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"


def test_seller_cannot_withdraw(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    response = api(seller).post(action(dispute, "withdraw"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("persona", ["buyer", "seller"])
def test_a_party_cannot_request_info(api, buyer, seller, persona):
    dispute = dispute_for(buyer=buyer, seller=seller)
    user = {"buyer": buyer, "seller": seller}[persona]
    response = api(user).post(
        action(dispute, "request-info"), {"party": "seller", "question": "?"}, format="json"
    )
    assert response.status_code == 403


@pytest.mark.parametrize("persona", ["buyer", "seller"])
def test_a_party_cannot_decide(api, buyer, seller, persona):
    dispute = dispute_for(buyer=buyer, seller=seller)
    user = {"buyer": buyer, "seller": seller}[persona]
    # whatever the body: the action is not theirs
    response = api(user).post(action(dispute, "decide"), {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("persona", ["other_buyer", "other_seller"])
def test_strangers_calling_party_actions_hear_not_found(api, buyer, seller, persona, request):
    dispute = dispute_for(buyer=buyer, seller=seller)
    user = request.getfixturevalue(persona)
    for name in ("withdraw", "statement", "messages"):
        assert api(user).post(action(dispute, name), {}, format="json").status_code == 404


@pytest.mark.parametrize("persona", ["other_buyer", "other_seller"])
def test_staff_actions_are_refused_by_role_before_any_dispute_is_looked_up(
    api, buyer, seller, persona, request
):
    """A role that never has the scope `decide` hears 403 whether or not the dispute exists, so
    the answer says nothing about it (docs/api.md, Authentication)."""
    dispute = dispute_for(buyer=buyer, seller=seller)
    user = request.getfixturevalue(persona)
    for name in ("decide", "request-info"):
        for url in (action(dispute, name), f"/api/v1/disputes/{uuid.uuid4()}/{name}/"):
            response = api(user).post(url, {}, format="json")
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "permission_denied"


def test_buyer_cannot_add_the_sellers_statement(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    response = api(buyer).post(action(dispute, "statement"), {"body": "x"}, format="json")
    assert response.status_code == 403


def test_decide_before_statement_and_before_statement_by_is_a_conflict(api, buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    response = api(staff).post(
        action(dispute, "decide"), {"outcome": "seller", "rationale": "No case."}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_transition"
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


def test_decide_without_statement_after_statement_by_is_allowed(api, buyer, seller, staff):
    # given a dispute opened 48 h and a minute ago; the seller stayed silent
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=timezone.now() - timedelta(hours=48, minutes=1)
    )

    # when staff decide for the seller
    response = api(staff).post(
        action(dispute, "decide"),
        {"outcome": "seller", "rationale": "No evidence of damage."},
        format="json",
    )

    # then it is decided and the case is closed for good
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "resolved_seller"
    assert response.json()["rationale"] == "No evidence of damage."
    dispute.case.refresh_from_db()
    assert dispute.case.state == CaseState.CLOSED
    assert dispute.case.closed_reason == "dispute_lost"


def test_decide_needs_a_rationale(api, buyer, seller, staff):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    response = api(staff).post(
        action(dispute, "decide"), {"outcome": "buyer", "rationale": " "}, format="json"
    )
    assert response.status_code == 400
    assert "rationale" in response.json()["error"]["fields"]


def test_decide_more_than_refundable_is_refused(api, buyer, seller, staff):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    response = api(staff).post(
        action(dispute, "decide"),
        {"outcome": "buyer", "amount": "59.91", "rationale": "Broken."},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_exceeds_refundable"


def test_statement_twice_is_a_conflict(api, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    response = api(seller).post(action(dispute, "statement"), {"body": "Again."}, format="json")
    assert response.status_code == 409


def test_request_info_while_waiting_for_an_answer_is_a_conflict(api, buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    client = api(staff)
    first = client.post(
        action(dispute, "request-info"), {"party": "seller", "question": "Tracking?"}, format="json"
    )
    assert first.status_code == 200
    second = client.post(
        action(dispute, "request-info"), {"party": "buyer", "question": "Photos?"}, format="json"
    )
    assert second.status_code == 409


def test_message_on_a_withdrawn_dispute_is_a_conflict(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    assert api(buyer).post(action(dispute, "withdraw")).status_code == 200
    response = api(seller).post(action(dispute, "messages"), {"body": "Thanks"}, format="json")
    assert response.status_code == 409


# --- the happy paths through the API ----------------------------------------------------------


def test_info_request_answered_by_the_party_asked(api, buyer, seller, staff):
    # given staff asked the seller for the tracking number
    dispute = dispute_for(buyer=buyer, seller=seller)
    body = (
        api(staff)
        .post(
            action(dispute, "request-info"),
            {"party": "seller", "question": "Tracking number?"},
            format="json",
        )
        .json()
    )
    assert (body["state"], body["info_party"]) == ("info_requested", "seller")

    # when the buyer writes, nothing moves; when the seller answers, review resumes
    api(buyer).post(action(dispute, "messages"), {"body": "Any news?"}, format="json")
    assert api(staff).get(detail(dispute)).json()["state"] == "info_requested"
    response = api(seller).post(action(dispute, "messages"), {"body": "SF123"}, format="json")
    assert response.status_code == 201
    assert response.json()["role"] == "seller"
    body = api(staff).get(detail(dispute)).json()
    assert body["state"] == "under_review"
    assert body["info_party"] is None
    assert [m["body"] for m in body["messages"]] == ["Any news?", "SF123"]


def test_buyer_withdraws(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    response = api(buyer).post(action(dispute, "withdraw"))
    assert response.status_code == 200
    assert response.json()["state"] == "withdrawn"
    dispute.case.refresh_from_db()
    assert (dispute.case.state, dispute.case.closed_reason) == ("closed", "dispute_withdrawn")


def test_staff_decide_for_the_buyer_and_the_refund_is_paid(
    api, buyer, seller, staff, django_capture_on_commit_callbacks
):
    from payouts.models import GatewayRefund

    dispute = with_statement(dispute_for(buyer=buyer, seller=seller, desired_amount="40.00"))
    with django_capture_on_commit_callbacks(execute=True):
        response = api(staff).post(
            action(dispute, "decide"),
            {"outcome": "buyer", "rationale": "Cracked on arrival."},
            format="json",
        )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["outcome"], body["amount"]) == ("resolved_buyer", "buyer", "40.00")
    dispute.case.refresh_from_db()
    assert dispute.case.state == CaseState.REFUNDED
    refund = GatewayRefund.objects.get(payment_reference=dispute.case.order.payment_reference)
    assert refund.amount == 40


def test_schema_documents_the_dispute_endpoints(api, staff):
    response = api(staff).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for suffix in (
        "",
        "{dispute_id}/",
        "{dispute_id}/decide/",
        "{dispute_id}/request-info/",
        "{dispute_id}/evidence/",
        "{dispute_id}/statement/",
    ):
        assert f"/api/v1/disputes/{suffix}" in paths


# --- throttles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "path", "content"),
    [
        ("dispute_filing", None, "json"),
        ("messages", "messages", "json"),
        ("uploads", "evidence", "multipart"),
    ],
)
def test_writes_are_rate_limited_reads_are_not(
    api, buyer, seller, monkeypatch, scope, path, content
):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    from tests.disputes.factories import png_upload

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {scope: "1/hour"})
    client = api(buyer)
    if path is None:
        cases = [rejected_case(buyer=buyer, seller=seller) for _ in range(2)]
        statuses = [client.post(LIST, open_body(case), format="json").status_code for case in cases]
        read = client.get(LIST)
    else:
        dispute = dispute_for(buyer=buyer, seller=seller)

        def body():  # type: ignore[no-untyped-def]
            return {"file": png_upload()} if content == "multipart" else {"body": "Hello"}

        statuses = [
            client.post(action(dispute, path), body(), format=content).status_code for _ in range(2)
        ]
        read = client.get(action(dispute, path))
    assert statuses == [201, 429]
    assert read.status_code == 200
