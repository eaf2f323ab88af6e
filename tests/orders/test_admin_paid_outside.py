"""The payout desk (docs/rules.md, Payouts): "mark paid outside the portal" end to end through
the admin, and the Stripe refund id linked to Stripe's dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.models import Event, User
from payouts.models import Payout, PayoutStatus
from tests.orders.factories import OrderFactory
from tests.payouts.helpers import attempt, make_payout, stripe_order

PASSWORD = "correct horse battery staple"
SECOND = timedelta(seconds=1)
REAUTH = timedelta(minutes=15)
CHANGELIST = "admin:payouts_payout_changelist"


@pytest.fixture
def start():
    return timezone.now()


@pytest.fixture
def desk(staff, start) -> Client:
    client = Client()
    with time_machine.travel(start, tick=False):
        client.force_login(staff)  # the password was given at `start`
    return client


@pytest.fixture
def waiting(db, stripe_server) -> Payout:
    """A PayPal payout waiting for staff (Stripe cannot refund PayPal money)."""
    order = OrderFactory(
        payment_method="paypal", payment_reference="PAYID-7K3F9Q2D", card_brand="", card_last4=""
    )
    payout = make_payout(order)
    assert payout.status == PayoutStatus.AWAITING_STAFF
    return payout


def form_url(payout: Payout) -> str:
    return reverse("admin:payouts_payout_paid_outside", args=[payout.pk])


def change_url(payout: Payout) -> str:
    return reverse("admin:payouts_payout_change", args=[payout.pk])


def asks_for_the_password(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and response["Location"].startswith("/admin/reauth/")


GOOD = {"reference": "PAYPAL-5TY05013RG002845M", "note": "Refunded in PayPal.\r\nBuyer told."}


# --- the action and its form ---------------------------------------------------------------------


def test_staff_mark_a_payout_paid_from_the_action_through_the_form(desk, start, staff, waiting):
    with time_machine.travel(start + REAUTH - SECOND, tick=False):
        # when staff choose the action on the payout
        response = desk.post(
            reverse(CHANGELIST),
            {"action": "mark_paid_outside", "_selected_action": [waiting.pk], "index": 0},
        )
        # then they are taken to its form, which shows the payout and asks for the two fields
        assert response.status_code == 302
        assert response["Location"] == form_url(waiting)
        page = desk.get(form_url(waiting))
        assert page.status_code == 200
        content = page.content.decode()
        assert 'name="reference"' in content and 'name="note"' in content
        assert "PayPal" in content and "59.90 USD" in content

        # when they submit it
        done = desk.post(form_url(waiting), GOOD)

    # then the payout succeeded, under their name, and the page shows what they wrote
    assert done.status_code == 302 and done["Location"] == change_url(waiting)
    payout = Payout.objects.get(pk=waiting.pk)
    assert payout.status == PayoutStatus.SUCCEEDED
    assert payout.paid_outside_by == staff
    assert payout.paid_outside_note == "Refunded in PayPal.\r\nBuyer told."
    assert Event.objects.get(kind="payout.paid_outside").actor == staff
    with time_machine.travel(start + REAUTH - SECOND, tick=False):
        page = desk.get(change_url(waiting), follow=True).content.decode()
    assert "PAYPAL-5TY05013RG002845M" in page
    assert "Refunded in PayPal." in page and "Buyer told." in page
    assert "Marked 59.90 USD paid outside the portal." in page
    # and the form is no longer offered on it
    assert form_url(waiting) not in page


def test_the_action_takes_exactly_one_payout(desk, start, waiting):
    other = make_payout(
        OrderFactory(payment_method="wallet", payment_reference="W-1", card_last4=""),
        key="refund:case-2",
    )
    with time_machine.travel(start + SECOND, tick=False):
        response = desk.post(
            reverse(CHANGELIST),
            {"action": "mark_paid_outside", "_selected_action": [waiting.pk, other.pk], "index": 0},
            follow=True,
        )
    assert "Choose exactly one payout" in response.content.decode()
    assert Payout.objects.filter(status=PayoutStatus.AWAITING_STAFF).count() == 2


def test_the_form_asks_for_the_password_after_15_minutes(desk, start, waiting):
    with time_machine.travel(start + REAUTH + SECOND, tick=False):
        # when staff with a stale sign-in open or post the form
        assert asks_for_the_password(desk.get(form_url(waiting)))
        response = desk.post(form_url(waiting), GOOD)
        # then they are asked for the password, and nothing was marked
        assert asks_for_the_password(response)
        assert Payout.objects.get(pk=waiting.pk).status == PayoutStatus.AWAITING_STAFF
        # and once they give it they are sent back to the form, which then goes through
        again = desk.post(response["Location"], {"password": PASSWORD})
        assert again["Location"] == form_url(waiting)
        assert desk.post(form_url(waiting), GOOD).status_code == 302
    assert Payout.objects.get(pk=waiting.pk).status == PayoutStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"reference": "", "note": "Paid."}, "reference", "This field is required"),
        ({"reference": "A\nB", "note": "Paid."}, "reference", "One line only"),
        ({"reference": "PAYID-1", "note": ""}, "note", "This field is required"),
        ({"reference": "PAYID-1", "note": "Paid\x07."}, "note", "Control characters"),
    ],
)
def test_the_form_shows_what_is_wrong_and_marks_nothing(desk, start, waiting, data, field, words):
    with time_machine.travel(start + SECOND, tick=False):
        response = desk.post(form_url(waiting), data)
    assert response.status_code == 200
    assert words in str(response.context["form"].errors[field])
    assert Payout.objects.get(pk=waiting.pk).status == PayoutStatus.AWAITING_STAFF


def test_a_pending_card_payout_is_refused_on_the_form(desk, start, stripe_server):
    stripe_server.answer("pending")
    _, payout = attempt(make_payout(stripe_order()))
    with time_machine.travel(start + SECOND, tick=False):
        page = desk.get(form_url(payout)).content.decode()
        assert "only one waiting for staff or one that failed" in page
        assert 'name="reference"' not in page
        response = desk.post(form_url(payout), GOOD)
    assert "only one waiting for staff or one that failed" in response.content.decode()
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.PENDING


def test_staff_without_the_payout_permission_cannot_mark_paid(waiting, start):
    # given a staff member who may only view payouts
    viewer = User.objects.create_user(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payout"))
    client = Client()
    with time_machine.travel(start, tick=False):
        client.force_login(viewer)
    with time_machine.travel(start + SECOND, tick=False):
        # then neither the action nor the form is offered, and posting is refused
        assert "mark_paid_outside" not in client.get(reverse(CHANGELIST)).content.decode()
        page = client.get(change_url(waiting)).content.decode()
        assert form_url(waiting) not in page
        assert client.get(form_url(waiting)).status_code == 403
        assert client.post(form_url(waiting), GOOD).status_code == 403
    assert Payout.objects.get(pk=waiting.pk).status == PayoutStatus.AWAITING_STAFF


def test_a_buyer_cannot_reach_the_form(waiting, buyer):
    client = Client()
    client.force_login(buyer)
    response = client.post(form_url(waiting), GOOD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Payout.objects.get(pk=waiting.pk).status == PayoutStatus.AWAITING_STAFF


def test_the_payout_page_offers_the_form_when_the_rule_allows_it(desk, start, waiting):
    with time_machine.travel(start + SECOND, tick=False):
        page = desk.get(change_url(waiting)).content.decode()
    assert form_url(waiting) in page
    assert "Mark paid outside the portal" in page


# --- the Stripe dashboard link -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "dashboard"),
    [
        ("sk_test_" + "a" * 24, "https://dashboard.stripe.com/test/refunds/"),
        ("rk_test_" + "a" * 24, "https://dashboard.stripe.com/test/refunds/"),
        ("sk_live_" + "a" * 24, "https://dashboard.stripe.com/refunds/"),
        ("rk_live_" + "a" * 24, "https://dashboard.stripe.com/refunds/"),
    ],
)
def test_the_payout_page_links_the_stripe_refund_to_the_dashboard(
    desk, start, stripe_server, settings, key, dashboard
):
    # given a payout Stripe refunded
    _, payout = attempt(make_payout(stripe_order()))
    refund_id = stripe_server.ledger[0].id
    assert payout.gateway_reference == refund_id

    # when staff open it with a test-mode or a live key configured
    settings.STRIPE_SECRET_KEY = key
    with time_machine.travel(start + SECOND, tick=False):
        page = desk.get(change_url(payout)).content.decode()

    # then its refund id links to that mode's dashboard page of the refund
    link = f'<a href="{dashboard}{refund_id}" target="_blank" rel="noopener noreferrer">'
    assert f"{link}{refund_id}</a>" in page


def test_only_a_stripe_refund_id_is_linked_and_it_is_escaped(desk, start, stripe_server):
    # given payouts whose references are not a plain Stripe refund id
    odd = make_payout(stripe_order(), key="refund:odd")
    Payout.objects.filter(pk=odd.pk).update(gateway_reference='re_"><script>x</script>')
    other = make_payout(stripe_order(reference="pi_9Zz"), key="refund:other")
    Payout.objects.filter(pk=other.pk).update(gateway_reference="pyr_1Abc")

    with time_machine.travel(start + SECOND, tick=False):
        odd_page = desk.get(change_url(odd)).content.decode()
        other_page = desk.get(change_url(other)).content.decode()

    # then the odd one is linked with its id quoted in the address and escaped in the text
    assert "<script>x</script>" not in odd_page
    assert "refunds/re_%22%3E%3Cscript%3Ex%3C%2Fscript%3E" in odd_page
    assert "re_&quot;&gt;&lt;script&gt;x&lt;/script&gt;" in odd_page
    # and a reference that is no refund id gets no link
    assert "pyr_1Abc" in other_page
    assert "dashboard.stripe.com" not in other_page


def test_the_fake_gateways_refund_ids_get_no_stripe_link(desk, start, order, settings):
    # the fake names its refunds re_… too, but they are not Stripe's
    settings.PAYMENT_GATEWAY = "fake"
    _, payout = attempt(make_payout(order))
    assert payout.gateway_reference.startswith("re_")
    with time_machine.travel(start + SECOND, tick=False):
        page = desk.get(change_url(payout)).content.decode()
    assert payout.gateway_reference in page
    assert "dashboard.stripe.com" not in page


def test_the_payout_page_costs_the_same_queries_whatever_its_state(desk, start, waiting, staff):
    # a query budget for the page the form and the link were added to
    def queries(payout: Payout) -> int:
        with (
            time_machine.travel(start + SECOND, tick=False),
            CaptureQueriesContext(connection) as ctx,
        ):
            assert desk.get(change_url(payout)).status_code == 200
        return len(ctx.captured_queries)

    waiting_cost = queries(waiting)
    desk_payout = Payout.objects.get(pk=waiting.pk)
    from payouts.services import payout_mark_paid_outside

    paid = payout_mark_paid_outside(payout=desk_payout, actor=staff, reference="R", note="N")
    assert queries(paid) <= waiting_cost + 1  # the staff member who marked it
