"""The staff dispute desk in Django admin: who gets in, the SLA queue, the file, the forms."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from disputes import services
from disputes.models import Dispute, DisputeState
from orders.models import Event
from orders.services import message_post_on_order
from refunds.evidence import evidence_add
from tests.disputes.factories import (
    decided,
    dispute_for,
    open_dispute,
    pdf_upload,
    png_upload,
    rejected_case,
    with_statement,
)
from tests.orders.factories import UserFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHANGELIST = "/admin/disputes/dispute/"


def change_url(dispute: Dispute) -> str:
    return reverse("admin:disputes_dispute_change", args=[dispute.pk])


def desk_url(dispute: Dispute, name: str) -> str:
    return reverse(f"admin:disputes_dispute_{name}", args=[dispute.pk])


@pytest.fixture
def desk(client, staff):
    client.force_login(staff)
    return client


# --- who gets in --------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["buyer", "seller", "other_buyer"])
def test_non_staff_never_reach_the_desk(client, buyer, seller, persona, request):
    # given a dispute, and a logged-in user who is not staff
    dispute = dispute_for(buyer=buyer, seller=seller)
    client.force_login(request.getfixturevalue(persona))

    # when they open any desk page or post a decision
    pages = [
        CHANGELIST,
        change_url(dispute),
        desk_url(dispute, "decide"),
        desk_url(dispute, "request_info"),
    ]
    responses = [client.get(page) for page in pages]
    posted = client.post(
        desk_url(dispute, "decide"), {"outcome": "buyer", "rationale": "I say so."}
    )

    # then they are sent to the admin login and nothing changed
    for response in [*responses, posted]:
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


def test_staff_without_the_dispute_permissions_are_refused(client, buyer, seller):
    # given a staff member who has no permission on disputes
    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    client.force_login(clerk)

    # when they open the queue or post a decision, then it is forbidden
    assert client.get(CHANGELIST).status_code == 403
    assert (
        client.post(desk_url(dispute, "decide"), {"outcome": "buyer", "rationale": "x"}).status_code
        == 403
    )
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


def test_staff_with_view_permission_only_see_but_cannot_act(client, buyer, seller):
    from django.contrib.auth.models import Permission

    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_dispute"))
    dispute = dispute_for(buyer=buyer, seller=seller)
    client.force_login(viewer)

    assert client.get(CHANGELIST).status_code == 200
    page = client.get(change_url(dispute))
    assert page.status_code == 200
    assert desk_url(dispute, "decide") not in page.content.decode()
    assert client.get(desk_url(dispute, "decide")).status_code == 403


# --- the queue ----------------------------------------------------------------------------------


def test_queue_is_ordered_by_sla(desk, buyer, seller, staff):
    # given, on Fri 13 Mar 2026 at noon China time, disputes opened at different times
    def opened(day: int, hour: int) -> Dispute:
        return dispute_for(
            buyer=UserFactory(),
            seller=seller,
            opened_at=datetime(2026, 3, day, hour, tzinfo=SHANGHAI),
        )

    now = datetime(2026, 3, 13, 12, tzinfo=SHANGHAI)
    with time_machine.travel(now, tick=False):
        on_time_later = opened(13, 9)  # due Fri 20 Mar
        past_due = opened(2, 10)  # due Mon 9 Mar: overdue
        on_time = opened(12, 10)  # target Tue 17 Mar
        past_target = opened(9, 10)  # target Thu 12 Mar, due Mon 16 Mar
        done = decided(opened(11, 10), staff=staff, outcome="seller")

        # when staff open the queue
        response = desk.get(CHANGELIST)

    # then overdue comes first, then past target, then by hard deadline; decided last
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [d.pk for d in rows] == [
        past_due.pk,
        past_target.pk,
        on_time.pk,
        on_time_later.pk,
        done.pk,
    ]
    html = response.content.decode()
    assert html.count("⚠ overdue") == 1
    assert html.count("⚠ past target") == 2  # the overdue one is past its target too


def test_queue_filters(desk, buyer, seller, other_buyer, staff):
    mine = dispute_for(buyer=buyer, seller=seller)
    services.dispute_assign(dispute=mine, staff=staff, assignee=staff)
    nobodys = dispute_for(buyer=other_buyer, seller=seller)

    def ids(query: dict[str, str]) -> list[int]:
        return [d.pk for d in desk.get(CHANGELIST, query).context["cl"].result_list]

    assert ids({"assigned": "me"}) == [mine.pk]
    assert ids({"assigned": "nobody"}) == [nobodys.pk]
    assert ids({"state__exact": "open"}) and ids({"state__exact": "withdrawn"}) == []
    assert ids({"sla": "overdue"}) == []
    assert ids({"q": mine.case.order.number}) == [mine.pk]
    assert ids({"q": other_buyer.email}) == [nobodys.pk]


@pytest.mark.parametrize("n", [1, 50])
def test_changelist_query_count_is_fixed(desk, seller, staff, n):
    # given n disputes, some assigned
    for i in range(n):
        dispute = dispute_for(buyer=UserFactory(), seller=seller)
        if i % 2:
            services.dispute_assign(dispute=dispute, staff=staff, assignee=staff)

    desk.get(CHANGELIST)  # warm the per-process caches (content types)

    # when staff open the queue, then it costs the same with 1 or 50 rows
    with CaptureQueriesContext(connection) as queries:
        response = desk.get(CHANGELIST)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == n
    # session, user, the second-factor device, the filtered and the full count, the page
    # (joined), the staff session's last-seen write (a savepoint, the update, its release);
    # nothing per row
    assert len(queries) == 9, "\n".join(q["sql"][:70] for q in queries)


# --- the file -----------------------------------------------------------------------------------


def _busy_dispute(buyer, seller, staff, n: int) -> Dispute:
    case = rejected_case(buyer=buyer, seller=seller)
    for i in range(n):
        message_post_on_order(
            order=case.order, author=buyer if i % 2 else seller, body=f"chat line {i}"
        )
    dispute = with_statement(open_dispute(case=case))
    for i in range(n):
        services.dispute_post_message(
            dispute=dispute, author=[buyer, seller, staff][i % 3], body=f"dispute line {i}"
        )
    for i in range(min(n, 10)):  # ten files per dispute at most
        upload = png_upload(f"photo-{i}.png") if i % 2 == 0 else pdf_upload(f"receipt-{i}.pdf")
        services.dispute_add_evidence(
            dispute=dispute, actor=buyer if i % 2 else seller, upload=upload, kind="photo"
        )
    return dispute


@pytest.mark.parametrize("n", [1, 30])
def test_change_page_query_count_is_fixed(desk, buyer, seller, staff, n):
    dispute = _busy_dispute(buyer, seller, staff, n)
    desk.get(change_url(dispute))  # warm the per-process caches (content types)
    with CaptureQueriesContext(connection) as queries:
        response = desk.get(change_url(dispute))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"chat line {n - 1}" in html and f"dispute line {n - 1}" in html
    # session, user, the second-factor device, the dispute (joined), files, transcript,
    # messages, trail, the staff session's last-seen write (3); nothing per row
    assert len(queries) == 11, [q["sql"] for q in queries]


def test_change_page_shows_the_whole_file(desk, buyer, seller, staff):
    # given a dispute with a transcript, a statement, messages and files
    case = rejected_case(buyer=buyer, seller=seller)
    message_post_on_order(order=case.order, author=buyer, body="Hello, it is cracked.")
    dispute = with_statement(open_dispute(case=case))
    services.dispute_post_message(dispute=dispute, author=buyer, body="See the photo.")
    photo = services.dispute_add_evidence(
        dispute=dispute, actor=buyer, upload=png_upload(), kind="photo"
    )
    evidence_add(
        case=dispute.case,
        actor=seller,
        upload=pdf_upload("invoice.pdf"),
        for_dispute=True,
        kind="receipt",
    )

    # when staff open it
    html = desk.get(change_url(dispute)).content.decode()

    # then everything is on one page, images as thumbnails through the checked view
    assert "Hello, it is cracked." in html
    assert "See the photo." in html
    assert "The buyer used the mug for a week." in html
    download = reverse("refunds_files:evidence-download", kwargs={"evidence_id": photo.public_id})
    assert f'<img src="{download}"' in html
    assert "invoice.pdf" in html
    assert "dispute.opened" in html and "refund.rejected" in html  # the audit trail
    assert desk_url(dispute, "decide") in html and desk_url(dispute, "request_info") in html
    # and nothing on it can be edited by hand
    assert 'name="state"' not in html
    assert "_save" not in html


# --- actions and the desk forms -----------------------------------------------------------------


def test_assign_to_me_and_start_review_write_audit_events(desk, buyer, seller, other_buyer, staff):
    first = dispute_for(buyer=buyer, seller=seller)
    second = dispute_for(buyer=other_buyer, seller=seller)
    selected = [str(first.pk), str(second.pk)]

    response = desk.post(CHANGELIST, {"action": "assign_to_me", "_selected_action": selected})
    assert response.status_code == 302
    assert set(Dispute.objects.values_list("assigned_to", flat=True)) == {staff.pk}
    assert Event.objects.filter(kind="dispute.assigned", actor=staff).count() == 2

    desk.post(CHANGELIST, {"action": "start_review", "_selected_action": [str(first.pk)]})
    first.refresh_from_db()
    assert first.state == DisputeState.UNDER_REVIEW
    event = Event.objects.get(kind="dispute.review_started")
    assert (event.dispute_id, event.actor, event.from_state, event.to_state) == (
        first.public_id,
        staff,
        "open",
        "under_review",
    )

    # starting again is refused with a message, not applied twice
    response = desk.post(
        CHANGELIST, {"action": "start_review", "_selected_action": [str(first.pk)]}, follow=True
    )
    assert "cannot start a review" in response.content.decode()
    assert Event.objects.filter(kind="dispute.review_started").count() == 1


def test_request_info_form(desk, buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    assert desk.get(desk_url(dispute, "request_info")).status_code == 200

    response = desk.post(
        desk_url(dispute, "request_info"),
        {"party": "seller", "question": "Which carrier did you use?"},
    )

    assert response.status_code == 302
    assert response["Location"] == change_url(dispute)
    dispute.refresh_from_db()
    assert (dispute.state, dispute.info_party) == ("info_requested", "seller")
    assert dispute.assigned_to == staff
    event = Event.objects.get(kind="dispute.info_requested")
    assert event.payload["notify"] == {"buyer": buyer.pk, "seller": seller.pk}
    assert event.payload["info_question"] == "Which carrier did you use?"


def test_decide_form_requires_a_rationale(desk, buyer, seller):
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    response = desk.post(desk_url(dispute, "decide"), {"outcome": "buyer", "rationale": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["rationale"]
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


def test_decide_form_refuses_before_the_seller_had_a_say(desk, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    page = desk.get(desk_url(dispute, "decide")).content.decode()
    assert "a decision is refused until then" in page

    response = desk.post(
        desk_url(dispute, "decide"), {"outcome": "seller", "rationale": "No case."}
    )

    assert response.status_code == 200
    assert "may make a statement until" in response.content.decode()
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.OPEN


def test_decide_form_pays_the_buyer(desk, buyer, seller, staff, django_capture_on_commit_callbacks):
    from payouts.models import GatewayRefund

    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(
            desk_url(dispute, "decide"),
            {"outcome": "buyer", "amount": "30.00", "rationale": "The photos show the crack."},
        )
    assert response.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.state, dispute.amount, dispute.decided_by) == ("resolved_buyer", 30, staff)
    refunds = GatewayRefund.objects.filter(payment_reference=dispute.case.order.payment_reference)
    assert [r.amount for r in refunds] == [30]
    event = Event.objects.get(kind="dispute.decided")
    assert event.note == "The photos show the crack."
    assert event.payload["notify"] == {"buyer": buyer.pk, "seller": seller.pk}
    # the decided dispute offers no more desk forms
    assert desk_url(dispute, "decide") not in desk.get(change_url(dispute)).content.decode()
