"""The staff desk (docs/rules.md, Who uses it; Payouts): read-only money and audit trail, payout
actions, fixed queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import services
from orders.models import Event, Order, Shop, User
from payouts import services as payout_services
from payouts.models import Chargeback, GatewayRefund, Payout, PayoutStatus, StripeEvent
from payouts.tasks import payout_send
from tests.orders.factories import OrderFactory


@pytest.fixture
def desk(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def failed_payout(order: Order, settings, key: str = "cancel:admin") -> Payout:  # type: ignore[no-untyped-def]
    """A payout the gateway declined, holding its reservation while it awaits a retry."""
    settings.FAKE_GATEWAY_MODE = "fail"
    with transaction.atomic():
        locked = services.order_lock(order)
        payout = payout_services.payout_create(
            order=locked,
            amount=order.total,
            purpose="cancel",
            subject_id=None,
            idempotency_key=key,
            actor=None,
        )
    payout_send.delay(payout.pk)
    settings.FAKE_GATEWAY_MODE = "succeed"
    payout = Payout.objects.get(pk=payout.pk)
    assert payout.status == PayoutStatus.FAILED
    return payout


@pytest.fixture
def desk_data(order, buyer, settings):  # type: ignore[no-untyped-def]
    services.message_post_on_order(order=order, author=buyer, body="Where is my parcel?")
    payout = failed_payout(order, settings)
    GatewayRefund.objects.create(
        idempotency_key="other",
        payment_reference="ch_x",
        amount=Decimal("1.00"),
        currency="USD",
        reference="re_x",
        status="succeeded",
    )
    Chargeback.objects.create(
        stripe_dispute_id="dp_1Q2w3E4r5T6y",
        order=order,
        amount=Decimal("59.90"),
        currency="USD",
        reason="fraudulent",
        opened_at=timezone.now(),
    )
    StripeEvent.objects.create(
        event_id="evt_1Q2w3E",
        type="charge.dispute.created",
        object_id="dp_1Q2w3E4r5T6y",
        created=timezone.now(),
        outcome="chargeback-open",
    )
    return {"order": order, "payout": payout}


def test_a_chargeback_links_to_its_dispute_in_stripes_dashboard(desk, desk_data, settings):
    # given the Stripe gateway in test mode
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = "sk_test_" + "x" * 24
    chargeback = Chargeback.objects.get()

    # then its page and the list link to the dispute in the test-mode dashboard
    link = 'href="https://dashboard.stripe.com/test/disputes/dp_1Q2w3E4r5T6y"'
    page = desk.get(reverse("admin:payouts_chargeback_change", args=[chargeback.pk]))
    assert link in page.content.decode()
    listing = desk.get(reverse("admin:payouts_chargeback_changelist"))
    assert link in listing.content.decode()


MODELS = [User, Shop, Order, Payout, Event, GatewayRefund, Chargeback, StripeEvent]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_staff_loads_every_changelist_and_change_page(desk, desk_data, model):
    opts = model._meta
    # the changelist, with a search to exercise the search fields
    response = desk.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert response.status_code == 200
    response = desk.get(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), {"q": "example"}
    )
    assert response.status_code == 200
    # the change (or view) page of one row
    obj = model.objects.order_by("pk").first()
    response = desk.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    assert response.status_code == 200


def test_order_page_shows_items_payouts_events_and_messages_read_only(desk, desk_data):
    order = desk_data["order"]
    response = desk.get(reverse("admin:orders_order_change", args=[order.pk]))
    content = response.content.decode()
    assert "Travel mug" in content
    assert "card_declined" in content
    assert "payout.failed" in content
    assert "Where is my parcel?" in content
    assert "59.90 USD" in content
    # nothing on the page can be submitted
    assert 'name="_save"' not in content
    response = desk.post(
        reverse("admin:orders_order_change", args=[order.pk]),
        {"status": "cancelled", "total": "1.00"},
    )
    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).total == Decimal("59.90")


@pytest.mark.parametrize("model", [Event, GatewayRefund, Payout, Order, Chargeback, StripeEvent])
def test_the_audit_trail_and_money_cannot_be_edited_by_anyone(desk, desk_data, staff, rf, model):
    # given a superuser
    request = rf.get("/")
    request.user = staff
    model_admin = admin.site._registry[model]

    # then the admin grants no add, change or delete on it
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)

    # and the URLs refuse too
    opts = model._meta
    obj = model.objects.order_by("pk").first()
    assert desk.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403
    delete_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])
    assert desk.post(delete_url, {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_events_cannot_be_deleted_in_bulk(desk, desk_data):
    events = Event.objects.count()
    response = desk.post(
        reverse("admin:orders_event_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(Event.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert response.status_code in (200, 302)
    assert Event.objects.count() == events


def test_a_non_staff_user_is_sent_to_the_login_page(buyer, desk_data):
    client = Client()
    client.force_login(buyer)
    response = client.get(reverse("admin:orders_order_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_retry_action_writes_an_audit_event_and_pays_once(
    desk, desk_data, staff, django_capture_on_commit_callbacks
):
    payout = desk_data["payout"]

    # when staff retry the failed payout from the changelist
    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(
            reverse("admin:payouts_payout_changelist"),
            {
                "action": "retry_failed",
                "_selected_action": [payout.pk],
                "index": 0,
            },
        )

    # then it is paid, once, and the retry is on the audit trail under the staff's name
    assert response.status_code == 302
    payout = Payout.objects.get(pk=payout.pk)
    assert payout.status == PayoutStatus.SUCCEEDED
    refund = GatewayRefund.objects.get(idempotency_key=payout.idempotency_key)
    assert (refund.amount, refund.calls) == (Decimal("59.90"), 1)
    event = Event.objects.get(kind="payout.retried")
    assert event.actor_id == staff.pk

    # and retrying it again is refused with a message, without paying again
    response = desk.post(
        reverse("admin:payouts_payout_changelist"),
        {
            "action": "retry_failed",
            "_selected_action": [payout.pk],
            "index": 0,
        },
        follow=True,
    )
    assert "cannot be retried" in response.content.decode()
    assert GatewayRefund.objects.get(idempotency_key=payout.idempotency_key).calls == 1


def test_cancel_action_releases_the_reservation(desk, desk_data, staff):
    payout = desk_data["payout"]
    order = desk_data["order"]
    assert Order.objects.get(pk=order.pk).refundable == Decimal("0")

    response = desk.post(
        reverse("admin:payouts_payout_changelist"),
        {
            "action": "cancel_failed",
            "_selected_action": [payout.pk],
            "index": 0,
        },
    )

    assert response.status_code == 302
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.CANCELLED
    assert Order.objects.get(pk=order.pk).refundable == Decimal("59.90")
    assert Event.objects.get(kind="payout.cancelled").actor_id == staff.pk
    assert not GatewayRefund.objects.filter(idempotency_key=payout.idempotency_key).exists()


def test_staff_without_the_payout_permission_get_no_payout_actions(desk_data, db):
    # given a staff member who may only view payouts
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user(email="viewer@example.com", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payout"))
    client = Client()
    client.force_login(viewer)
    payout = desk_data["payout"]

    response = client.get(reverse("admin:payouts_payout_changelist"))
    assert response.status_code == 200
    assert "retry_failed" not in response.content.decode()
    client.post(
        reverse("admin:payouts_payout_changelist"),
        {
            "action": "retry_failed",
            "_selected_action": [payout.pk],
            "index": 0,
        },
    )
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.FAILED


def test_staff_add_a_user_by_email(desk, db):
    response = desk.post(
        reverse("admin:orders_user_add"),
        {
            "email": "New.Person@Example.com",
            "name": "New Person",
            "time_zone": "Europe/Paris",
            "usable_password": "false",
            "password1": "",
            "password2": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(email="new.person@example.com")
    assert user.time_zone == "Europe/Paris"
    assert not user.has_usable_password()


def _changelist_queries(client: Client, name: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse(name))
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "name",
    [
        "admin:orders_order_changelist",
        "admin:payouts_payout_changelist",
        "admin:orders_event_changelist",
    ],
)
def test_changelists_keep_a_fixed_query_count(desk, settings, seller, name):
    # given N orders, each with a failed payout and its events
    def add_orders(count: int) -> None:
        for _ in range(count):
            order = OrderFactory(shop=seller.shops.get())
            failed_payout(order, settings, key=f"cancel:{order.number}")

    add_orders(3)
    at_n = _changelist_queries(desk, name)

    # when there are 3N
    add_orders(6)

    # then the page costs the same number of queries
    assert _changelist_queries(desk, name) == at_n
