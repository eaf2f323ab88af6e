"""The audit trail (`orders.models.Event`) is append-only for people: no admin screen and no API
endpoint edits or deletes a row, not even for a superuser. Services append to it; that is all.

The API half walks the URL conf, so an endpoint added later is covered without a new test.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework import serializers as drf_serializers
from rest_framework.views import APIView

from orders.models import Event
from refunds import services as refund_services
from tests.conftest import api_client_for
from tests.refunds.factories import file_refund

from .urlwalk import api_routes, fill


def trail() -> dict[int, tuple[Any, ...]]:
    return {
        e.pk: (
            e.kind,
            e.order_id,
            e.case_id,
            e.actor_id,
            e.from_state,
            e.to_state,
            e.note,
            e.payload,
            e.created_at,
        )
        for e in Event.objects.all()
    }


@pytest.fixture
def case(order, seller):
    case = file_refund(order, amount="20.00")
    return refund_services.refund_reject(case=case, actor=seller, reason="Used.")


@pytest.fixture
def desk(staff) -> Client:
    assert staff.is_superuser
    client = Client()
    client.force_login(staff)
    return client


def test_not_even_a_superuser_may_add_change_or_delete_an_event_in_admin(staff, case):
    model_admin = admin.site._registry[Event]
    request = RequestFactory().get("/admin/")
    request.user = staff
    event = Event.objects.first()
    assert model_admin.has_view_permission(request, event)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert "delete_selected" not in model_admin.get_actions(request)
    # and no other admin edits events through an inline
    for other in admin.site._registry.values():
        for inline in other.get_inline_instances(request):
            if inline.model is Event:
                assert not inline.has_add_permission(request, None)
                assert not inline.has_change_permission(request, None)
                assert not inline.has_delete_permission(request, None)


def test_admin_refuses_posts_that_would_edit_or_delete_events(desk, case):
    # given the audit trail as it is
    before = trail()
    event = Event.objects.order_by("pk").first()
    change = reverse("admin:orders_event_change", args=[event.pk])
    delete = reverse("admin:orders_event_delete", args=[event.pk])
    add = reverse("admin:orders_event_add")
    changelist = reverse("admin:orders_event_changelist")

    # when a superuser posts an edit, a deletion, an addition and a bulk delete
    edited = desk.post(
        change,
        {
            "kind": "forged",
            "note": "rewritten",
            "payload": "{}",
            "order": event.order_id,
            "created_at_0": "2020-01-01",
            "created_at_1": "00:00:00",
        },
    )
    deleted = desk.post(delete, {"post": "yes"})
    added = desk.post(add, {"kind": "forged", "order": event.order_id, "payload": "{}"})
    bulk = desk.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )

    # then each is refused and the trail is untouched; the event is still readable
    assert edited.status_code == 403
    assert deleted.status_code == 403
    assert added.status_code == 403
    assert bulk.status_code in {200, 302}  # the changelist: "no action selected"
    assert trail() == before
    page = desk.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_a_staff_member_granted_every_permission_still_cannot_edit_events(staff, case):
    # given a non-superuser staff member with the model's add/change/delete permissions
    from tests.orders.factories import UserFactory

    clerk = UserFactory(email="clerk@example.com", is_staff=True)
    clerk.user_permissions.set(
        Permission.objects.filter(content_type__app_label="orders", content_type__model="event")
    )
    client = Client()
    client.force_login(clerk)
    before = trail()
    event = Event.objects.order_by("pk").first()

    # when they post a deletion
    response = client.post(reverse("admin:orders_event_delete", args=[event.pk]), {"post": "yes"})

    # then it is refused all the same
    assert response.status_code == 403
    assert trail() == before


def _serializer_models(view: Any) -> set[type]:
    found: set[type] = set()
    for attr in ("serializer_class", "queryset"):
        value = getattr(view, attr, None)
        if value is None:
            continue
        if attr == "queryset":
            found.add(value.model)
        elif isinstance(value, type) and issubclass(value, drf_serializers.ModelSerializer):
            found.add(value.Meta.model)
    return found


def test_no_api_view_is_built_on_the_event_model():
    for route in api_routes():
        view = route.view_class
        assert issubclass(view, APIView), route.pattern
        assert Event not in _serializer_models(view), f"{route.pattern} exposes Event"


WRITE_METHODS = ("post", "put", "patch", "delete")


def test_no_api_request_edits_or_deletes_an_existing_event(staff, buyer, seller, case):
    # given the audit trail as it is (services may append to it; nothing may rewrite it)
    before = trail()
    values = {
        "public_id": case.public_id,
        "number": case.order.number,
        "dispute_id": "00000000-0000-0000-0000-000000000000",
        "case_id": case.public_id,
    }

    # when every API endpoint gets every write method from every party
    for route in api_routes():
        url = fill(route, values)
        for user in (staff, buyer, seller):
            client = api_client_for(user)
            for method in WRITE_METHODS:
                response = getattr(client, method)(
                    url, {"kind": "forged", "note": "x"}, format="json"
                )
                assert response.status_code < 500, (method, url, response.status_code)

    # then every event that was there is still there, unchanged
    after = trail()
    assert {pk: after.get(pk) for pk in before} == before
