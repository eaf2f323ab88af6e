"""The OpenAPI schema tells the truth about every API operation (schemathesis 4, WSGI app).

For each persona (buyer, seller, staff, the marketplace feed) and each operation of
`/api/schema/`, schemathesis generates requests valid per the schema (positive, on real objects
the persona can see) and invalid ones (negative, any path values), sends them with the persona's
token, and runs `CHECKS` on every answer: no server error, only documented status codes and
content types, bodies and headers as the schema declares them (every error in the envelope of
docs/api.md, Errors), and invalid input refused. Generation is derandomized and bounded
(`EXAMPLES` per operation and persona), so a run takes the same time each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from notifications.models import Notification
from notifications.services import notifications_fan_out
from orders.models import ApiToken, User
from refunds import services as refund_services
from refunds.evidence import evidence_add
from tests.conftest import api_token_for
from tests.disputes.factories import dispute_for, png_upload
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

pytestmark = [pytest.mark.slow]

PERSONAS = ["buyer", "seller", "staff", "marketplace"]
# Per operation and persona: valid requests on real objects, then invalid ones anywhere.
EXAMPLES = {GenerationMode.POSITIVE: 14, GenerationMode.NEGATIVE: 10}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


def token_for(user: User) -> str:
    """The one place the schema tests get an API key (docs/api.md, Authentication)."""
    return api_token_for(user)


@dataclass
class World:
    """Real objects every persona has a part in, so valid requests reach real answers."""

    order: str
    case: str
    offered_case: str
    dispute: str
    notifications: dict[str, str]
    spare_keys: dict[str, str]

    def path_parameters(self, path: str, persona: str) -> dict[str, str]:
        """The objects a valid request on `path` names: a case with an offer for the offer
        answers, the persona's own notice for the notification paths, and a key of its own
        other than the one it calls with for the key paths (a revoked or rotated calling key
        would end the run)."""
        if path.startswith("/api/v1/notifications/"):
            notice = self.notifications.get(persona)
            return {"public_id": notice} if notice else {}
        if path.startswith("/api/v1/tokens/"):
            return {"public_id": self.spare_keys[persona]}
        case = self.offered_case if "-offer/" in path else self.case
        values = {"number": self.order, "public_id": case, "dispute_id": self.dispute}
        return {name: value for name, value in values.items() if f"{{{name}}}" in path}


@pytest.fixture
def world(buyer, seller, staff, marketplace) -> World:
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    case = file_refund(order, amount="20.00")
    evidence_add(case=case, actor=buyer, upload=png_upload())
    offered = file_refund(OrderFactory(buyer=buyer, shop=seller.shops.get()), amount="30.00")
    refund_services.refund_offer(case=offered, actor=seller, amount="10.00")
    dispute = dispute_for(buyer=buyer, seller=seller)
    evidence_add(case=dispute.case, actor=seller, upload=png_upload(), for_dispute=True)
    notifications_fan_out()
    people = {"buyer": buyer, "seller": seller, "staff": staff, "marketplace": marketplace}
    notices = {
        name: str(notice.public_id)
        for name, user in people.items()
        if (notice := Notification.objects.filter(recipient=user).first())
    }
    return World(
        order=order.number,
        case=str(case.public_id),
        offered_case=str(offered.public_id),
        dispute=str(dispute.public_id),
        notifications=notices,
        spare_keys={
            name: str(ApiToken.objects.get(digest=ApiToken.digest_of(token_for(user))).public_id)
            for name, user in people.items()
        },
    )


# Generated once per operation and mode, then sent as every persona: generation is most of the
# run's cost, and every persona gets the same requests. Positive cases name placeholder objects,
# replaced with the test's real ones when sent (`World.path_parameters`).
_GENERATED: dict[tuple[str, GenerationMode], list[Any]] = {}
PLACEHOLDERS = {
    "number": "ORD-0",
    "public_id": "00000000-0000-4000-8000-000000000000",
    "dispute_id": "00000000-0000-4000-8000-000000000000",
}


def generated_cases(operation: Any, mode: GenerationMode) -> list[Any]:
    key = (operation.label, mode)
    if key in _GENERATED:
        return _GENERATED[key]
    cases: list[Any] = []
    fixed = {name: value for name, value in PLACEHOLDERS.items() if f"{{{name}}}" in operation.path}
    strategy = operation.as_strategy(
        generation_mode=mode,
        path_parameters=fixed if mode == GenerationMode.POSITIVE and fixed else None,
    )

    @hypothesis_settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def collect(case: Any) -> None:
        cases.append(case)

    try:
        collect()
    except Unsatisfiable:
        # Nothing of this operation can be made invalid (no body, no parameters).
        assert mode == GenerationMode.NEGATIVE, operation.label
    _GENERATED[key] = cases
    return cases


def fuzz_operation(
    operation: Any, *, persona: str, headers: dict[str, str], world: World
) -> tuple[list[str], int]:
    """Send the generated requests of one operation as one persona; what the checks found wrong
    (one entry per distinct failure) and how many requests were sent."""
    failures: dict[str, str] = {}
    sent = 0
    for mode in EXAMPLES:
        for case in generated_cases(operation, mode):
            if mode == GenerationMode.POSITIVE:
                case.path_parameters = {
                    **case.path_parameters,
                    **world.path_parameters(operation.path, persona),
                }
            response = case.call(headers=headers)
            sent += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    summary = (failure.message or "").splitlines()[:1]
                    failures.setdefault(
                        f"{failure.title} {summary}",
                        f"{case.method} {case.formatted_path} ({mode.value}) -> "
                        f"{response.status_code}: {failure.title}\n    "
                        + (failure.message or "").replace("\n", "\n    ")[:600],
                    )
    return list(failures.values()), sent


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_every_operation_answers_as_the_schema_says(
    persona, request, world, api_schema, wsgi_in_test_transaction
):
    # given the persona's token and the objects it has a part in
    user = request.getfixturevalue(persona)
    headers = {"Authorization": f"Token {token_for(user)}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 30, "the schema lost operations"

    # when every operation gets its valid and invalid requests
    failures: list[str] = []
    sent = 0
    for operation in operations:
        found, count = fuzz_operation(operation, persona=persona, headers=headers, world=world)
        sent += count
        failures.extend(found)

    # then no answer contradicts the schema
    assert sent >= len(operations) * EXAMPLES[GenerationMode.POSITIVE]
    assert not failures, f"{len(failures)} failures as {persona}:\n" + "\n".join(failures)
