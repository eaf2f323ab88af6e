"""One error envelope for every API error, DRF's own included (docs/api.md, Errors)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from api.errors import api_exception_handler
from kernel.errors import DomainError, InvalidTransition

LIST_URL = "/api/v1/orders/"


def envelope_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_401_when_no_credentials_are_sent(db):
    response = APIClient().get(LIST_URL)
    envelope_of(response, 401, "not_authenticated")
    # a 401 says how to authenticate
    assert response["WWW-Authenticate"] == "Token"


def test_401_for_an_unknown_token(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    envelope_of(client.get(LIST_URL), 401, "not_authenticated")


def test_403_when_the_role_may_not(api, buyer):
    error = envelope_of(api(buyer).post(LIST_URL, {}, format="json"), 403, "permission_denied")
    assert "marketplace" in error["message"]


def test_404_for_an_order_that_does_not_exist(api, buyer):
    envelope_of(api(buyer).get(f"{LIST_URL}NO-SUCH-ORDER/"), 404, "not_found")


def test_405_for_a_method_the_endpoint_does_not_have(api, buyer, order):
    response = api(buyer).delete(f"{LIST_URL}{order.number}/")
    error = envelope_of(response, 405, "method_not_allowed")
    assert "DELETE" in error["message"]


def test_400_for_a_malformed_json_body(api, marketplace):
    response = api(marketplace).post(LIST_URL, '{"number": "A-1",', content_type="application/json")
    error = envelope_of(response, 400, "validation_error")
    assert "JSON parse error" in error["message"]


def test_400_for_a_body_that_is_not_an_object(api, marketplace):
    response = api(marketplace).post(LIST_URL, [1, 2], format="json")
    error = envelope_of(response, 400, "validation_error")
    assert "non_field_errors" in error["fields"]


def test_415_for_a_form_encoded_body(api, marketplace):
    response = api(marketplace).post(LIST_URL, {"number": "A-1"})  # multipart
    envelope_of(response, 415, "unsupported_media_type")


def test_400_field_errors_name_each_field(api, marketplace):
    error = envelope_of(api(marketplace).post(LIST_URL, {}, format="json"), 400, "validation_error")
    assert {"number", "buyer", "seller", "currency", "total", "items"} <= set(error["fields"])
    assert all(isinstance(m, list) and m for m in error["fields"].values())


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (DomainError("bad"), 400, "validation_error"),
        (InvalidTransition("no"), 409, "invalid_transition"),
        (DomainError("late", code="window_closed"), 400, "window_closed"),
    ],
)
def test_domain_errors_carry_their_code(exc, status, code):
    response = api_exception_handler(exc, {})
    assert response is not None
    assert response.status_code == status
    assert response.data == {"error": {"code": code, "message": str(exc)}}


def test_an_unknown_api_path_answers_in_the_envelope(client):
    # given no such endpoint, when it is requested, then the API's 404 envelope comes back
    response = client.get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such API endpoint."}}
