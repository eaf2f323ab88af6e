"""What the OpenAPI schema promises, checked on the answers it was wrong about (docs/api.md).

Fast, targeted companions of the fuzzer (test_schema_fuzz.py): each answer is validated by
schemathesis' own checks against the schema `/api/schema/` serves.
"""

from __future__ import annotations

from typing import Any

import pytest
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.schema import EVERY_OPERATION, WITH_BODY
from refunds.evidence import evidence_add
from tests.disputes.factories import dispute_for, png_upload
from tests.security.test_schema_fuzz import token_for

pytestmark = pytest.mark.django_db

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def call_and_validate(
    api_schema: Any, path: str, method: str, headers: dict[str, str], **parameters: Any
) -> Any:
    case = api_schema[path][method].Case(path_parameters=parameters)
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)
    return response


def test_an_order_action_without_a_deadline_is_as_the_schema_says(
    api_schema, order, seller, wsgi_in_test_transaction
):
    # given an order the seller may message and cancel as out of stock, neither with a deadline
    # when the seller reads it
    headers = {"Authorization": f"Token {token_for(seller)}"}
    response = call_and_validate(
        api_schema, "/api/v1/orders/{number}/", "GET", headers, number=order.number
    )
    # then those actions are `{}`, which the schema allows
    assert response.json()["actions"]["message"] == {}


def test_dispute_evidence_links_are_absolute_as_the_schema_says(
    api_schema, buyer, seller, wsgi_in_test_transaction
):
    # given a dispute with a file
    dispute = dispute_for(buyer=buyer, seller=seller)
    evidence_add(case=dispute.case, actor=seller, upload=png_upload(), for_dispute=True)
    # when the buyer lists the dispute's files and reads the dispute
    headers = {"Authorization": f"Token {token_for(buyer)}"}
    listed = call_and_validate(
        api_schema,
        "/api/v1/disputes/{dispute_id}/evidence/",
        "GET",
        headers,
        dispute_id=str(dispute.public_id),
    )
    detail = call_and_validate(
        api_schema,
        "/api/v1/disputes/{dispute_id}/",
        "GET",
        headers,
        dispute_id=str(dispute.public_id),
    )
    # then each file's link is an absolute URL, as `format: uri` says
    urls = [listed.json()["results"][0]["url"], detail.json()["evidence"][0]["url"]]
    assert all(url.startswith("http://") and "/files/evidence/" in url for url in urls), urls


def test_every_operation_documents_the_errors_every_operation_can_answer(api_schema):
    for result in api_schema.get_all_operations():
        operation = result.ok()
        statuses = set(operation.definition.raw["responses"])
        expected = {str(status) for status in EVERY_OPERATION} | {"414"}
        if operation.method.upper() != "GET":
            expected |= {str(status) for status in WITH_BODY}
        assert expected <= statuses, (operation.label, sorted(expected - statuses))


def test_a_request_without_credentials_is_answered_as_the_schema_says(
    api_schema, wsgi_in_test_transaction
):
    # given no token and no session
    for result in api_schema.get_all_operations():
        operation = result.ok()
        placeholders = {
            name: "00000000-0000-4000-8000-000000000000"
            for name in ("number", "public_id", "dispute_id")
            if f"{{{name}}}" in operation.path
        }
        case = operation.Case(path_parameters=placeholders)
        # when any operation is called
        response = case.call()
        # then it is a documented 401 with its challenge header, in the envelope
        assert response.status_code == 401, operation.label
        case.validate_response(response, checks=CHECKS)
        # (schemathesis keeps header names in lower case, each with its list of values)
        assert response.headers["www-authenticate"] == ["Token"], operation.label


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/orders/?role=",
        "/api/v1/orders/?status=",
        "/api/v1/refunds/?role=",
        "/api/v1/refunds/?state=",
        "/api/v1/refunds/?order=",
        "/api/v1/disputes/?state=",
        "/api/v1/orders/?role=buyer&role=seller",
        "/api/v1/refunds/?state=closed&state=requested",
        "/api/v1/disputes/?state=open&state=withdrawn",
    ],
)
def test_a_list_filter_given_empty_or_twice_is_refused_not_ignored(api, buyer, query):
    # given a filter the schema allows once, with one of its values
    # when it is sent empty, or twice
    response = api(buyer).get(query)
    # then it is a validation error naming it, not the unfiltered list or the last value's
    assert response.status_code == 400, response.content
    name = query.split("?")[1].split("=")[0]
    assert response.json()["error"]["code"] == "validation_error"
    assert name in response.json()["error"]["fields"]
