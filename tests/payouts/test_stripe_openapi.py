"""The local Stripe server checked against Stripe's own OpenAPI schemas (docs/architecture.md,
Tests): the validator refuses what Stripe would not send or accept, and the server's real
traffic, through the real `stripe` client, passes for every scripted behaviour."""

from __future__ import annotations

import contextlib
import json

import pytest
import stripe

from tests.payouts.helpers import STRIPE_KEY
from tests.payouts.stripe_openapi import (
    SPEC_FILE,
    SchemaViolation,
    form_decode,
    spec,
    validate_dispute,
    validate_event,
    validate_object,
    validate_request,
    validate_response,
)
from tests.payouts.stripe_server import StripeServer

FORM = "application/x-www-form-urlencoded"
EXAMPLES = json.loads((SPEC_FILE.parent / "fixtures.json").read_text())


def refund(**changes):
    """Stripe's own example Refund (fixtures of the kept commit), changed as given."""
    return {**EXAMPLES["refund"], **changes}


def client(server: StripeServer, key: str = STRIPE_KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": server.url}, max_network_retries=0)


def create(server: StripeServer, idempotency_key: str = "k1", amount: int = 5990, **more):
    params = {
        "payment_intent": "pi_3Ab",
        "amount": amount,
        "metadata": {"payout": "p-1", "order_number": "O-1"},
        **more,
    }
    return client(server).v1.refunds.create(params, {"idempotency_key": idempotency_key})


# --- the kept schemas are Stripe's ---------------------------------------------------------------


def test_the_kept_schemas_name_their_source_and_stripes_examples_pass_them():
    source = spec()["x-source"]
    assert source["repository"] == "stripe/openapi"
    assert len(source["commit"]) == 40
    assert source["api_version"] == spec()["info"]["version"]
    assert "MIT" in source["license"]
    for name in ("refund", "dispute", "event"):
        assert validate_object(name, EXAMPLES[name]) == []


# --- the validator bites -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["id", "object", "amount", "currency", "created"])
def test_a_refund_answer_missing_a_required_field_is_refused(field):
    # given a refund answer without a field Stripe always sends
    answer = refund()
    del answer[field]

    # when it is checked, then it is refused, naming the field
    [problem] = validate_response("POST", "/v1/refunds", 200, answer)
    assert f"'{field}' is a required property" in problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "5990"),  # a JSON answer carries an integer, not a string
        ("charge", {"id": "ch_1"}),  # never expanded: an id or null
        ("failure_reason", None),  # sent only on a failed refund, never null
        ("object", "charge"),
        ("metadata", {"payout": 1}),
    ],
)
def test_a_refund_answer_with_a_wrong_type_is_refused(field, value):
    problems = validate_response("GET", "/v1/refunds/re_1", 200, refund(**{field: value}))
    assert problems
    assert all(f"at {field}" in p for p in problems), problems


def test_an_error_answer_is_held_to_stripes_error_types():
    # Stripe has no `rate_limit_error` type: a 429 is an invalid request error
    refused = {"error": {"type": "rate_limit_error", "message": "Slow down."}}
    accepted = {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "."}}
    assert validate_response("POST", "/v1/refunds", 429, refused)
    assert validate_response("POST", "/v1/refunds", 429, accepted) == []
    assert validate_response("POST", "/v1/refunds", 400, {"message": "no envelope"})


def test_a_request_is_decoded_as_stripe_decodes_a_form():
    assert form_decode("amount=5990&metadata[payout]=p-1&expand[]=charge&expand[]=x") == {
        "amount": "5990",
        "metadata": {"payout": "p-1"},
        "expand": ["charge", "x"],
    }
    body = "payment_intent=pi_1&amount=5990&metadata[payout]=p-1&reason=duplicate"
    assert validate_request("POST", "/v1/refunds", "", body, FORM) == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("payment_intent=pi_1&amount=5990&payout=p-1", "'payout' was unexpected"),
        ("payment_intent=pi_1&amount=59.90", "'59.90' is not of type 'integer'"),
        ("payment_intent=pi_1&amount=5990&reason=because", "'because' is not one of"),
        ("payment_intent=pi_1&amount=5990&refund_application_fee=yes", "'yes' is not of type"),
    ],
)
def test_a_request_stripe_would_refuse_is_refused(body, complaint):
    problems = validate_request("POST", "/v1/refunds", "", body, FORM)
    assert any(complaint in p for p in problems), problems


def test_query_parameters_and_unknown_operations_are_checked():
    assert validate_request("GET", "/v1/refunds", "payment_intent=pi_1&limit=10", "", "") == []
    [unknown] = validate_request("GET", "/v1/refunds", "payment_intnet=pi_1", "", "")
    assert "'payment_intnet' was unexpected" in unknown
    [nowhere] = validate_request("POST", "/v1/charges", "", "amount=1", FORM)
    assert "no such operation" in nowhere


def test_a_bad_event_is_refused():
    # given an event as Stripe sends it, carrying a refund
    event = {**EXAMPLES["event"], "type": "refund.updated", "data": {"object": refund()}}
    validate_event(event)

    # then one without its type, one whose refund is malformed, and a refund event carrying an
    # object the kept schemas do not know are each refused
    untyped = {k: v for k, v in event.items() if k != "type"}
    with pytest.raises(SchemaViolation, match="'type' is a required property"):
        validate_event(untyped)
    with pytest.raises(SchemaViolation, match=r"data.object \(refund\): at amount"):
        validate_event({**event, "data": {"object": refund(amount="5990")}})
    with pytest.raises(SchemaViolation, match="no kept schema for object 'plan'"):
        validate_event({**EXAMPLES["event"], "type": "refund.updated"})
    # while an event of a kind the portal ignores needs only a valid envelope
    validate_event(EXAMPLES["event"])


def test_a_bad_dispute_is_refused():
    validate_dispute(EXAMPLES["dispute"])
    with pytest.raises(SchemaViolation, match="at status"):
        validate_dispute({**EXAMPLES["dispute"], "status": "open"})
    unrefundable = {k: v for k, v in EXAMPLES["dispute"].items() if k != "is_charge_refundable"}
    with pytest.raises(SchemaViolation, match="'is_charge_refundable' is a required property"):
        validate_dispute(unrefundable)


# --- the server's real traffic -------------------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour",
    [
        "succeeded",
        "pending",
        "requires_action",
        "failed:lost_or_stolen_card",
        "canceled",
        402,
        "400:charge_already_refunded",
        "400:amount_too_large",
        401,
        429,
        500,
        503,
    ],
)
def test_the_servers_traffic_for_each_behaviour_passes_stripes_schemas(stripe_server, behaviour):
    # given the server scripted to answer with this behaviour
    stripe_server.answer(behaviour)

    # when the real client asks for a refund, then reads it back or asks again with the key
    try:
        made = create(stripe_server)
        client(stripe_server).v1.refunds.retrieve(made.id)
    except stripe.StripeError:
        with contextlib.suppress(stripe.StripeError):  # a definite refusal is replayed
            create(stripe_server)

    # then every request and answer agreed with Stripe's schemas
    assert len(stripe_server.requests) == 2
    assert stripe_server.violations == []


def test_replays_mismatches_and_missing_refunds_pass_stripes_schemas(stripe_server):
    create(stripe_server)
    create(stripe_server)  # replayed
    with pytest.raises(stripe.IdempotencyError):
        create(stripe_server, amount=1)
    with pytest.raises(stripe.InvalidRequestError):
        client(stripe_server).v1.refunds.retrieve("re_missing")
    assert stripe_server.violations == []


def test_the_server_records_what_disagrees_with_stripes_schemas(stripe_server, monkeypatch):
    # given a server that forgets the amount in its Refund objects
    made = stripe_server._refund_object

    def forgetful(refund):
        return {k: v for k, v in made(refund).items() if k != "amount"}

    monkeypatch.setattr(stripe_server, "_refund_object", forgetful)

    # when the client asks for a refund with a parameter Stripe does not know
    create(stripe_server, payout="p-1")

    # then both are recorded, naming the path and the schema's complaint
    assert stripe_server.violations == [
        "POST /v1/refunds body: at (the whole): "
        "Additional properties are not allowed ('payout' was unexpected)",
        "POST /v1/refunds answered 200: at (the whole): 'amount' is a required property",
    ]
    stripe_server.violations.clear()  # the fixture would fail this test at teardown
