"""Bad input through every API operation of the OpenAPI schema (schemathesis 4, WSGI app).

For each operation in `/api/schema/`, schemathesis generates requests both valid per the schema
(positive, on real objects) and invalid (negative, any path values); each is sent as one of the
personas, authenticated with a token. Whatever arrives, the API answers below 500, and every
error is the documented envelope `{"error": {"code", "message", ...}}` (docs/api.md, Errors).
Generation is derandomized and bounded (`EXAMPLES` per operation), so the suite takes the same time
each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from refundportal.wsgi import application
from refunds import services as refund_services
from tests.conftest import api_token_for
from tests.disputes.factories import dispute_for
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

pytestmark = [pytest.mark.slow]

# Per operation: valid requests on real objects, then invalid ones anywhere.
EXAMPLES = {GenerationMode.POSITIVE: 14, GenerationMode.NEGATIVE: 10}


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    """The WSGI handler closes the connection after each request (CONN_MAX_AGE=0); inside a
    test that would drop the test's transaction, so do what Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class World:
    tokens: dict[str, str]
    path_parameters: dict[str, str]


@pytest.fixture
def world(buyer, other_buyer, seller, other_seller, staff, marketplace) -> World:
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    case = file_refund(order, amount="20.00")
    offered = file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="30.00")
    refund_services.refund_offer(case=offered, actor=seller, amount="10.00")
    dispute = dispute_for(buyer=buyer, seller=seller)
    people = {
        "buyer": buyer,
        "other_buyer": other_buyer,
        "seller": seller,
        "other_seller": other_seller,
        "staff": staff,
        "marketplace": marketplace,
    }
    return World(
        tokens={name: api_token_for(user) for name, user in people.items()},
        path_parameters={
            "number": order.number,
            "public_id": str(case.public_id),
            "dispute_id": str(dispute.public_id),
        },
    )


def envelope_problem(response: Any) -> str | None:
    """Why an error response is not the documented envelope (None when it is)."""
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "no 'error' object"
    if not isinstance(error.get("code"), str) or not error["code"]:
        return "no 'error.code'"
    if not isinstance(error.get("message"), str):
        return "no 'error.message'"
    if "fields" in error and not isinstance(error["fields"], dict):
        return "'error.fields' is not an object"
    return None


@pytest.mark.django_db
def test_every_operation_answers_bad_input_without_5xx_in_the_error_envelope(
    world, wsgi_in_test_transaction
):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, "the schema lost operations"
    failures: list[str] = []
    skipped: list[str] = []
    sent = 0

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            fixed = (
                {}
                if mode == GenerationMode.NEGATIVE
                else {
                    name: world.path_parameters[name]
                    for name in world.path_parameters
                    if f"{{{name}}}" in operation.path
                }
            )
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed or None)

            @hypothesis_settings(
                max_examples=examples,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy, persona=st.sampled_from(sorted(world.tokens)))
            def send(case: Any, persona: str) -> None:
                nonlocal sent
                response = case.call(headers={"Authorization": f"Token {world.tokens[persona]}"})
                sent += 1
                # `send` runs within this iteration, so the loop's `mode` is the right one.
                where = f"{case.method} {case.formatted_path} as {persona} ({mode.value})"  # noqa: B023
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code}")
                elif response.status_code >= 400 and (problem := envelope_problem(response)):
                    failures.append(
                        f"{where}: {response.status_code} {problem}: {response.text[:200]}"
                    )

            try:
                send()
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (no body, no parameters).
                assert mode == GenerationMode.NEGATIVE, operation.path
                skipped.append(f"{operation.method.upper()} {operation.path}")

    assert sent >= len(operations) * 10
    assert len(skipped) < len(operations) / 2, skipped
    assert not failures, "\n".join(sorted(set(failures))[:40])
