"""The staff desk for cases: read-only, searchable, and one button that runs the sweep."""

from __future__ import annotations

import pytest
import time_machine

from orders.models import Event
from refunds.evidence import evidence_add
from refunds.models import RefundCase, State
from tests.refunds.factories import SECOND, file_refund, minimal_pdf_bytes, reload, upload

CHANGELIST = "/admin/refunds/refundcase/"


@pytest.fixture
def desk(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00", return_item=True)


def test_changelist_searches_by_order_number_and_email(desk, case, order):
    for query in (order.number, "buyer@example.com", "seller@example.com"):
        response = desk.get(CHANGELIST, {"q": query})
        assert response.status_code == 200
        assert case.short_id.encode() in response.content, query

    assert case.short_id.encode() not in desk.get(CHANGELIST, {"q": "nobody"}).content


def test_changelist_filters_by_state_and_reason(desk, case):
    assert case.short_id.encode() in desk.get(CHANGELIST, {"state__exact": "requested"}).content
    assert case.short_id.encode() not in desk.get(CHANGELIST, {"state__exact": "closed"}).content
    assert case.short_id.encode() in desk.get(CHANGELIST, {"reason__exact": "changed_mind"}).content


def test_change_page_is_read_only_with_trail_thread_and_evidence(desk, case, buyer):
    from refunds import services

    services.refund_message_post(case=case, author=buyer, body="Where do I send it?")
    evidence = evidence_add(
        case=case, actor=buyer, upload=upload("receipt.pdf", minimal_pdf_bytes())
    )

    response = desk.get(f"{CHANGELIST}{case.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "refund.requested" in html
    assert "evidence.added" in html
    assert "Where do I send it?" in html
    assert f"/files/evidence/{evidence.public_id}/" in html
    assert 'name="state"' not in html  # no state editing
    assert "20.00 USD" in html


def test_posting_the_change_form_changes_nothing(desk, case):
    response = desk.post(f"{CHANGELIST}{case.pk}/change/", {"state": "refunded"})

    assert response.status_code == 403
    assert reload(case).state == State.REQUESTED


def test_no_adding_or_deleting_cases(desk, case):
    assert desk.get(f"{CHANGELIST}add/").status_code == 403
    assert desk.get(f"{CHANGELIST}{case.pk}/delete/").status_code == 403


def test_return_number_is_not_shown_before_it_is_issued(desk, case):
    assert case.return_number
    assert case.return_number.encode() not in desk.get(CHANGELIST).content
    assert case.return_number.encode() not in desk.get(f"{CHANGELIST}{case.pk}/change/").content


def test_run_the_deadline_sweep_from_the_desk(desk, case, staff):
    # given a request whose seller let respond_by pass
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        desk.force_login(staff)  # days later: a fresh staff sign-in
        # when staff run the sweep from the case list
        response = desk.post(
            CHANGELIST, {"action": "run_deadline_sweep", "_selected_action": [case.pk]}, follow=True
        )

    # then the case is auto-accepted as the beat task would have done
    assert response.status_code == 200
    assert b"Deadline sweep moved 1 case" in response.content
    assert reload(case).state == State.AWAITING_RETURN
    assert Event.objects.filter(case_id=case.public_id, kind="refund.auto_accepted").count() == 1


def test_apply_the_passed_deadline_of_the_selected_cases_only(
    desk, case, other_buyer, seller, staff
):
    # given two requests whose seller let respond_by pass, and one still inside its window
    from tests.orders.factories import OrderFactory

    shop = seller.shops.get()
    other_due = file_refund(OrderFactory(buyer=other_buyer, shop=shop), amount="10.00")
    with time_machine.travel(case.respond_by + SECOND, tick=False):
        not_due = file_refund(OrderFactory(buyer=other_buyer, shop=shop), amount="10.00")
        desk.force_login(staff)  # days later: a fresh staff sign-in
        # when staff apply the passed deadline to the first and the not-yet-due one
        response = desk.post(
            CHANGELIST,
            {"action": "apply_due_deadlines", "_selected_action": [case.pk, not_due.pk]},
            follow=True,
        )

    # then only the selected, due case is auto-accepted, through the sweep's own event
    assert b"1 of 2 selected case(s) moved" in response.content
    assert reload(case).state == State.AWAITING_RETURN
    assert reload(case).rma_issued_at == case.respond_by  # the next clock starts at the deadline
    assert reload(not_due).state == State.REQUESTED
    assert reload(other_due).state == State.REQUESTED  # due, but not selected
    assert Event.objects.filter(case_id=case.public_id, kind="refund.auto_accepted").count() == 1


def test_staff_without_the_change_permission_cannot_run_the_sweep(client, case):
    from tests.orders.factories import UserFactory

    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_refundcase"))
    client.force_login(viewer)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert b"run_deadline_sweep" not in response.content
    assert b"apply_due_deadlines" not in response.content


def test_evidence_admin_lists_files_with_download_links(desk, case, buyer):
    evidence = evidence_add(case=case, actor=buyer, upload=upload("r.pdf", minimal_pdf_bytes()))

    response = desk.get("/admin/refunds/evidence/")

    assert response.status_code == 200
    assert evidence.original_name.encode() in response.content
    detail = desk.get(f"/admin/refunds/evidence/{evidence.pk}/change/")
    assert f"/files/evidence/{evidence.public_id}/".encode() in detail.content
    assert desk.get("/admin/refunds/evidence/add/").status_code == 403
    assert RefundCase.objects.count() == 1
