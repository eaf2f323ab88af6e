"""Each case action is declared once (`refunds.rules.CASE_ACTIONS`): the API, the case page and
both URL confs serve every declared action, and an action refused is refused alike through the
API and the page."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import resolve, reverse
from django.utils.module_loading import import_string

from refunds.models import RefundCase, State
from refunds.rules import ACTION_OF_NAME, CASE_ACTIONS, ROUTED_CASE_ACTIONS, CaseAction
from tests.conftest import api_client_for
from tests.orders.factories import delivered
from tests.portal.conftest import client_for
from tests.portal.helpers import visible_text
from tests.refunds.factories import file_refund

pytestmark = pytest.mark.django_db

ROUTED = pytest.mark.parametrize("action", ROUTED_CASE_ACTIONS, ids=lambda a: a.name)


@pytest.fixture
def case(order, buyer) -> RefundCase:
    delivered(order)
    return file_refund(order, reason="damaged", amount="20.00")


def _api(user: Any, case: RefundCase, name: str, body: dict[str, Any] | None = None) -> Any:
    url = reverse(f"api:refund-{name}", kwargs={"public_id": case.public_id})
    return api_client_for(user).post(url, body or {}, format="json")


def _page(user: Any, case: RefundCase, name: str, body: dict[str, Any] | None = None) -> Any:
    url = reverse(f"case-{name}", kwargs={"case_id": case.public_id})
    return client_for(user).post(url, body or {})


# --- routes -------------------------------------------------------------------------------------


def test_only_opening_a_dispute_is_served_elsewhere():
    assert [a.name for a in CASE_ACTIONS if not a.routed] == ["open-dispute"]
    assert [a.name for a in ROUTED_CASE_ACTIONS] == [
        "accept",
        "offer",
        "reject",
        "confirm-return",
        "accept-offer",
        "decline-offer",
        "withdraw",
        "ship-return",
    ]


@ROUTED
def test_every_declared_action_has_its_api_and_page_route(action: CaseAction, case):
    # the paths and names clients and bookmarks use
    api_path = f"/api/v1/refunds/{case.public_id}/{action.name}/"
    page_path = f"/refunds/{case.public_id}/{action.name}/"
    assert reverse(f"api:refund-{action.name}", kwargs={"public_id": case.public_id}) == api_path
    assert reverse(f"case-{action.name}", kwargs={"case_id": case.public_id}) == page_path
    # both serve this declaration
    assert resolve(api_path).func.view_class.case_action is action  # type: ignore[attr-defined]
    assert resolve(page_path).kwargs["action"] == action.name


@ROUTED
def test_every_declared_action_names_its_service_input_and_copy(action: CaseAction):
    assert callable(import_string(action.service))
    assert action.service.startswith("refunds.services.refund_")
    takes_input = action.name in {"offer", "reject", "ship-return"}
    assert (action.input_serializer() is not None) == takes_input
    assert action.message and action.summary


# --- the OpenAPI document -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


@ROUTED
def test_the_schema_has_one_operation_per_action_with_its_request(action: CaseAction, schema):
    operation = schema["paths"][f"/api/v1/refunds/{{public_id}}/{action.name}/"]["post"]
    assert operation["operationId"] == "refunds_" + action.name.replace("-", "_")
    assert operation["summary"] == action.summary
    assert {"200", "400", "401", "403", "404", "409"} <= set(operation["responses"])
    serializer = action.input_serializer()
    if serializer is None:
        assert "requestBody" not in operation
    else:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{serializer.__name__}Request"
        assert set(
            schema["components"]["schemas"][serializer.__name__ + "Request"]["properties"]
        ) == set(serializer().fields)


# --- refused alike through the API and the page -------------------------------------------------


@ROUTED
def test_the_other_party_is_refused_before_the_body_through_api_and_page(
    action: CaseAction, case, buyer, seller
):
    # given a requested case, when the party the action is not for calls it with an empty body
    other = seller if action.party == "buyer" else buyer
    api = _api(other, case, action.name)
    page = _page(other, case, action.name)
    # then both say it is not theirs (the page shows it on the case, as it shows every refusal)
    refusal = f"Only the {action.party} can do that on this case."
    assert (api.status_code, api.json()["error"]) == (
        403,
        {"code": "permission_denied", "message": refusal},
    )
    assert page.status_code == 400
    assert refusal in visible_text(page)
    case.refresh_from_db()
    assert case.state == State.REQUESTED


def test_an_action_the_state_does_not_allow_is_refused_alike(case, seller):
    # given a requested case (no return shipped), when the seller confirms the return
    api = _api(seller, case, "confirm-return")
    page = _page(seller, case, "confirm-return")
    # then the API's 409 and the page carry the same reason
    assert api.status_code == 409
    assert api.json()["error"]["code"] == "invalid_transition"
    assert page.status_code == 400
    assert api.json()["error"]["message"] in visible_text(page)


def test_an_invalid_input_is_refused_alike(case, seller):
    # given a case asking 20.00, when the seller offers all of it
    api = _api(seller, case, "offer", {"amount": "20.00"})
    page = _page(seller, case, "offer", {"amount": "20.00"})
    # then both refuse it next to the amount, and nothing changed
    assert api.status_code == 400
    assert api.json()["error"]["code"] == "validation_error"
    assert set(api.json()["error"]["fields"]) == {"amount"}
    assert page.status_code == 400
    assert api.json()["error"]["message"] in visible_text(page)
    case.refresh_from_db()
    assert case.state == State.REQUESTED


def test_a_done_action_says_its_declared_message_on_the_page(case, seller):
    response = client_for(seller).post(
        reverse("case-accept", kwargs={"case_id": case.public_id}), follow=True
    )
    assert response.redirect_chain[-1][0] == f"/refunds/{case.public_id}/"
    assert ACTION_OF_NAME["accept"].message in visible_text(response)
