"""Requests an outside attacker sends to find a 500 (docs/api.md, Errors; docs/architecture.md,
Hostile requests): each is a 4xx — in the API's JSON envelope under /api/, a page or form error
elsewhere — and nothing is written.

Routes are walked from the URL conf and the admin's registry, not listed by hand, so a new
endpoint, page or changelist is covered the day it is added.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from api.paging import MAX_LIMIT, MAX_OFFSET
from disputes.models import Dispute
from orders.models import Order
from refunds import services as refund_services
from refunds.models import Evidence
from tests.orders.factories import UserFactory
from tests.security.urlwalk import Route, all_routes, api_routes, fill

MIB = 1024 * 1024


def envelope_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert list(body) == ["error"], body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def _api(user: Any) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def _page(user: Any) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _any_values(route: Route, value: str) -> dict[str, str]:
    return dict.fromkeys(route.params, value)


# --- OPTIONS --------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", api_routes(), ids=lambda r: r.key)
def test_every_api_endpoint_answers_options(route, staff):
    # given any endpoint of the API, on an object that need not exist
    url = fill(route, _any_values(route, str(uuid.uuid4())))

    # when staff ask what it serves, then it answers, naming what it parses
    response = _api(staff).options(url)
    assert response.status_code == 200, (url, response.content[:300])
    assert "parses" in response.json()


# --- limit and offset -------------------------------------------------------------------------


def _paged_lists() -> list[Route]:
    """The API's lists that take no path parameter (the others page the same way)."""
    return [
        r
        for r in api_routes()
        if not r.params
        and getattr(r.view_class, "pagination_class", None)
        and "get" in dir(r.view_class)
    ]


BAD_PAGING = [
    "limit=70418469733033607168",
    "limit=1000",
    f"limit={MAX_LIMIT + 1}",
    "limit=0",
    "limit=-1",
    "limit=1.5",
    "limit=abc",
    "limit=1e3",
    "offset=-5",
    "offset=99999999999999999999",
    f"offset={MAX_OFFSET + 1}",
    "offset=x",
    "limit=",
    "offset=",
    "limit=5&limit=10",
    "offset=0&offset=50",
]


@pytest.mark.parametrize("query", BAD_PAGING)
@pytest.mark.parametrize("route", _paged_lists(), ids=lambda r: r.key)
def test_absurd_limit_or_offset_is_a_validation_error(route, query, staff):
    # when a list is asked for a page outside the bounds, then 400 naming the parameter
    response = _api(staff).get(f"{fill(route, {})}?{query}")
    error = envelope_of(response, 400, "validation_error")
    assert query.split("=")[0] in error["fields"]


def test_a_page_holds_at_most_the_maximum(api, staff, seller, buyer):
    # given more orders than the largest page
    from tests.orders.factories import OrderFactory

    OrderFactory.create_batch(MAX_LIMIT + 1, buyer=buyer, shop=seller.shops.get())

    # when the largest page is asked for, then it holds that many and says there is more
    body = api(staff).get(f"/api/v1/orders/?limit={MAX_LIMIT}&offset={MAX_OFFSET}").json()
    assert body["count"] == MAX_LIMIT + 1 and body["results"] == []
    body = api(staff).get(f"/api/v1/orders/?limit={MAX_LIMIT}").json()
    assert len(body["results"]) == MAX_LIMIT and body["next"]


def test_the_schema_states_the_paging_bounds(client):
    schema = client.get("/api/schema/?format=json").json()
    params = {
        p["name"]: p["schema"]
        for p in schema["paths"]["/api/v1/orders/"]["get"]["parameters"]
        if p["name"] in ("limit", "offset")
    }
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == MAX_LIMIT
    assert params["offset"]["minimum"] == 0 and params["offset"]["maximum"] == MAX_OFFSET


# --- NUL bytes ------------------------------------------------------------------------------------


NUL_VALUES = ["%00", "a%00b", "ORD-1%00"]


@pytest.mark.parametrize("value", NUL_VALUES)
@pytest.mark.parametrize("route", [r for r in all_routes() if r.params], ids=lambda r: r.key)
def test_a_nul_byte_in_a_path_parameter_is_not_found(route, value, buyer):
    # when any URL with a path parameter carries a NUL byte
    url = fill(route, _any_values(route, value))
    client = _api(buyer) if route.is_api else _page(buyer)
    for method in ("get", "post"):
        response = getattr(client, method)(url)

        # then it is a 404 (the envelope under /api/), never a database error
        if route.is_api:
            envelope_of(response, 404, "not_found")
        else:
            assert response.status_code == 404, (method, url, response.status_code)
    assert not Dispute.objects.exists()


def test_a_nul_byte_in_an_api_filter_is_a_validation_error(api, buyer):
    for url in ("/api/v1/orders/?status=%00", "/api/v1/refunds/?order=a%00b"):
        envelope_of(_api(buyer).get(url), 400, "validation_error")


def _changelist_queries(model_admin: Any) -> list[str]:
    """A NUL byte in each of the changelist's filters, and in its search."""
    names = []
    for entry in model_admin.list_filter:
        name = entry[0] if isinstance(entry, tuple) else entry
        names.append(f"{name}__exact" if isinstance(name, str) else name.parameter_name)
    return [f"{name}=%00" for name in names] + ["q=%00", "o=%00", "p=%00"]


@pytest.mark.parametrize(
    "model", list(admin.site._registry), ids=lambda m: f"{m._meta.app_label}.{m._meta.model_name}"
)
def test_a_nul_byte_in_an_admin_filter_is_a_bad_request(model, db):
    # given a superuser on the model's changelist
    client = _page(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"

    # when a filter, the search or the ordering carries a NUL byte, then it is a 400
    for query in _changelist_queries(admin.site._registry[model]):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400, (url, query, response.status_code)


# --- bodies ---------------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [33, 5000, 100_000])
def test_deeply_nested_json_is_a_validation_error(depth, buyer, marketplace):
    for user, url in ((marketplace, "/api/v1/orders/"), (buyer, "/api/v1/disputes/")):
        response = _api(user).post(url, _nested(depth), content_type="application/json")
        error = envelope_of(response, 400, "validation_error")
        assert "nested deeper" in error["message"]
    assert not Order.objects.exists() and not Dispute.objects.exists()


def test_json_nested_within_the_limit_is_read(marketplace):
    # 32 levels are parsed: the answer is about the body's content, not its depth
    response = _api(marketplace).post(
        "/api/v1/orders/", _nested(32), content_type="application/json"
    )
    error = envelope_of(response, 400, "validation_error")
    assert "nested deeper" not in error["message"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"]
)
def test_a_body_over_2_mib_is_413(content_type, marketplace):
    body = json.dumps({"number": "x" * (2 * MIB)})
    response = _api(marketplace).post("/api/v1/orders/", body, content_type=content_type)
    error = envelope_of(response, 413, "payload_too_large")
    assert "2 MiB" in error["message"]
    assert not Order.objects.exists()


def test_a_form_field_over_djangos_limit_is_413_too(buyer, order):
    # given an upload whose text field alone is over DATA_UPLOAD_MAX_MEMORY_SIZE (Django meets
    # it while reading the multipart body, within the upload's larger limit)
    case = refund_services.refund_request(
        order=order, buyer=buyer, reason="changed_mind", amount="59.90"
    )
    photo = SimpleUploadedFile("photo.png", b"\x89PNG", content_type="image/png")
    response = _api(buyer).post(
        f"/api/v1/refunds/{case.public_id}/evidence/",
        {"file": photo, "kind": "x" * (3 * MIB)},
        format="multipart",
    )
    envelope_of(response, 413, "payload_too_large")
    assert not Evidence.objects.exists()


def test_a_view_may_raise_its_own_body_limit(monkeypatch, marketplace):
    # given an endpoint that takes batches up to 8 MiB (a view attribute)
    from orders.api import OrderListCreateApi

    monkeypatch.setattr(OrderListCreateApi, "max_body_bytes", 8 * MIB, raising=False)

    # when a 3 MiB JSON body arrives, then the view reads and judges it
    body = json.dumps({"number": "x" * (3 * MIB)})
    response = _api(marketplace).post("/api/v1/orders/", body, content_type="application/json")
    envelope_of(response, 400, "validation_error")
    # and past its limit it is 413
    body = json.dumps({"number": "x" * (9 * MIB)})
    response = _api(marketplace).post("/api/v1/orders/", body, content_type="application/json")
    envelope_of(response, 413, "payload_too_large")


def test_an_evidence_upload_larger_than_the_json_limit_still_works(buyer, order):
    # given an open case and a 3 MiB photo (noise does not compress)
    case = refund_services.refund_request(
        order=order, buyer=buyer, reason="changed_mind", amount="59.90"
    )
    buffer = io.BytesIO()
    Image.frombytes("RGB", (1024, 1024), os.urandom(3 * MIB)).save(buffer, format="PNG")
    assert buffer.tell() > 2 * MIB
    photo = SimpleUploadedFile("photo.png", buffer.getvalue(), content_type="image/png")

    # when the buyer uploads it, then it is stored
    response = _api(buyer).post(
        f"/api/v1/refunds/{case.public_id}/evidence/", {"file": photo}, format="multipart"
    )
    assert response.status_code == 201, response.content[:300]
    assert Evidence.objects.filter(case=case).count() == 1


def test_an_upload_over_its_own_limit_is_413(settings, buyer, order):
    settings.API_MAX_UPLOAD_BODY_BYTES = 64 * 1024
    case = refund_services.refund_request(
        order=order, buyer=buyer, reason="changed_mind", amount="59.90"
    )
    blob = SimpleUploadedFile("photo.png", b"\x89PNG" + b"0" * 128 * 1024, "image/png")
    response = _api(buyer).post(
        f"/api/v1/refunds/{case.public_id}/evidence/", {"file": blob}, format="multipart"
    )
    envelope_of(response, 413, "payload_too_large")
    assert not Evidence.objects.exists()


# --- every API error in the envelope ------------------------------------------------------------


def test_unknown_api_routes_are_404_in_the_envelope(buyer):
    for url in ("/api/v1/nope/", "/api/v2/orders/", "/api/", "/api/v1/orders/x/y/z/"):
        envelope_of(_api(buyer).get(url), 404, "not_found")


def test_405_and_415_are_in_the_envelope(buyer, marketplace):
    envelope_of(_api(buyer).delete("/api/v1/orders/"), 405, "method_not_allowed")
    response = _api(marketplace).post("/api/v1/orders/", "<a/>", content_type="application/xml")
    envelope_of(response, 415, "unsupported_media_type")


def test_429_is_in_the_envelope(throttle_rates, buyer):
    throttle_rates(dispute_filing="1/hour")
    client = _api(buyer)
    client.post("/api/v1/disputes/", {}, format="json")
    response = client.post("/api/v1/disputes/", {}, format="json")
    envelope_of(response, 429, "rate_limited")
    assert response["Retry-After"]


@pytest.fixture
def broken_order_list(monkeypatch):
    """The order list (API and page) fails with an error nobody handles."""

    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("orders.api.order_list_for_user", boom)
    monkeypatch.setattr("portal.views.refunds.order_cards", boom)


def test_a_500_under_the_api_is_in_the_envelope(broken_order_list, buyer):
    error = envelope_of(_api(buyer).get("/api/v1/orders/"), 500, "server_error")
    # nothing of the failure is told
    assert "database" not in error["message"]


def test_a_500_on_a_page_is_an_html_page(broken_order_list, buyer):
    response = _page(buyer).get("/orders/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
