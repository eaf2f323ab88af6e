"""API keys (docs/api.md, Authentication): hashed at rest, expiring, rotated and revoked, with
scopes that only narrow what the account's role allows."""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.contrib.admin.sites import site as admin_site
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import ApiScope, ApiToken
from orders.rules import api_scope_refusal, api_scopes
from tests.conftest import api_token_for
from tests.orders.factories import OrderFactory

from .urlwalk import api_routes, fill

LIST_URL = "/api/v1/tokens/"
SECOND = timedelta(seconds=1)
SCOPES = tuple(ApiScope.values)

# What each kind of account may do, written out here rather than read from the code.
ROLE_RIGHTS = {
    "buyer": {"read", "act"},
    "seller": {"read", "act"},
    "staff": {"read", "act", "decide", "marketplace"},
    "marketplace": {"read", "marketplace"},
}


def keyed(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code
    return body["error"]


def security_events(caplog: Any, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "security_event", None) == name]


def token_of(key: str) -> ApiToken:
    return ApiToken.objects.get(prefix=key[: ApiToken.PREFIX_LENGTH])


# --- hashed at rest -----------------------------------------------------------------------------


def test_the_key_is_shown_once_and_only_its_digest_is_stored(api, buyer):
    # when the buyer issues a key
    response = api(buyer).post(LIST_URL, {"name": "laptop", "scopes": ["read"]}, format="json")

    # then the answer has the key, and no column of any stored token holds it
    assert response.status_code == 201, response.content
    key = response.json()["key"]
    assert len(key) >= 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM orders_apitoken")
        rows = cursor.fetchall()
    assert rows
    assert not any(key in str(value) for row in rows for value in row)
    # and the key works, but is never shown again
    assert keyed(key).get("/api/v1/orders/").status_code == 200
    listed = api(buyer).get(LIST_URL).json()["results"]
    assert [t["name"] for t in listed] == ["laptop"]
    assert "key" not in listed[0]
    assert key.startswith(listed[0]["prefix"])
    assert "key" not in api(buyer).get(reverse("api:token-detail", args=[listed[0]["id"]])).json()


def test_bearer_works_like_token(buyer):
    key = api_token_for(buyer)
    assert keyed(key, "Bearer").get("/api/v1/orders/").status_code == 200


def test_an_unknown_key_of_a_known_prefix_is_not_authenticated(buyer):
    key = api_token_for(buyer)
    forged = key[: ApiToken.PREFIX_LENGTH] + "x" * (len(key) - ApiToken.PREFIX_LENGTH)
    response = keyed(forged).get("/api/v1/orders/")
    error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


# --- expiry ------------------------------------------------------------------------------------


def test_a_key_works_until_its_expiry_and_not_a_second_after(buyer, settings):
    # given a key issued with the default lifetime
    settings.API_TOKEN_DAYS = 30
    key = api_token_for(buyer)
    expires_at = token_of(key).expires_at
    assert expires_at - token_of(key).created_at == timedelta(days=30)

    # then it works a second before its expiry
    with time_machine.travel(expires_at - SECOND, tick=False):
        assert keyed(key).get("/api/v1/orders/").status_code == 200
    # and answers 401 in the envelope a second after
    with time_machine.travel(expires_at + SECOND, tick=False):
        response = keyed(key).get("/api/v1/orders/")
    assert "expired" in error_of(response, 401, "not_authenticated")["message"]


def test_a_lifetime_beyond_the_maximum_is_refused(api, buyer, settings):
    settings.API_TOKEN_MAX_DAYS = 365
    response = api(buyer).post(LIST_URL, {"days": 366}, format="json")
    assert "days" in error_of(response, 400, "validation_error")["fields"]
    assert not ApiToken.objects.exists()


def test_last_use_is_written_at_most_once_a_minute(buyer):
    key = api_token_for(buyer)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        keyed(key).get("/api/v1/orders/")
    assert token_of(key).last_used_at == start
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        keyed(key).get("/api/v1/orders/")
    assert token_of(key).last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        keyed(key).get("/api/v1/orders/")
    assert token_of(key).last_used_at == start + timedelta(seconds=61)


# --- rotation and revocation -------------------------------------------------------------------


def test_rotation_gives_a_new_key_and_the_old_one_stops_at_once(buyer, caplog):
    # given a key
    old_key = api_token_for(buyer, scopes=["read", "act"])
    old = token_of(old_key)
    caplog.set_level(logging.INFO, logger="refundportal.security")
    caplog.clear()

    # when the key rotates itself
    response = keyed(old_key).post(reverse("api:token-rotate", args=[old.public_id]))

    # then a new key with the same scopes works and the old one does not
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["scopes"] == ["read", "act"]
    assert new["id"] != str(old.public_id)
    assert keyed(new["key"]).get("/api/v1/orders/").status_code == 200
    error_of(keyed(old_key).get("/api/v1/orders/"), 401, "not_authenticated")
    # and the old key cannot be rotated again, by its owner either
    again = APIClient()
    again.force_authenticate(buyer)
    error_of(
        again.post(reverse("api:token-rotate", args=[old.public_id])), 409, "invalid_transition"
    )
    # and the log has the new key and the revoked one, never a key itself
    assert [r.event_how for r in security_events(caplog, "api_token_created")] == ["rotation"]
    assert [r.event_token for r in security_events(caplog, "api_token_revoked")] == [
        str(old.public_id)
    ]
    assert not any(
        old_key in r.getMessage() or new["key"] in r.getMessage() for r in caplog.records
    )


def test_revocation_stops_the_key_at_once_and_logs_once(api, buyer, caplog):
    key = api_token_for(buyer)
    token = token_of(key)
    caplog.set_level(logging.INFO, logger="refundportal.security")
    caplog.clear()
    url = reverse("api:token-detail", args=[token.public_id])

    # when the owner revokes it twice
    assert api(buyer).delete(url).status_code == 204
    assert api(buyer).delete(url).status_code == 204

    # then the key answers 401, the list shows when it was revoked, and one event was logged
    assert "revoked" in error_of(keyed(key).get(LIST_URL), 401, "not_authenticated")["message"]
    assert api(buyer).get(url).json()["revoked_at"] is not None
    (event,) = security_events(caplog, "api_token_revoked")
    assert (event.event_token, event.event_how) == (str(token.public_id), "api")
    assert key not in event.getMessage()


def test_creating_a_key_is_logged_without_the_key(api, buyer, caplog):
    caplog.set_level(logging.INFO, logger="refundportal.security")
    caplog.clear()
    key = api(buyer).post(LIST_URL, {"scopes": ["read"]}, format="json").json()["key"]
    (event,) = security_events(caplog, "api_token_created")
    assert (event.event_owner, event.event_scopes, event.event_how) == (buyer.email, "read", "api")
    assert all(key not in str(value) for value in vars(event).values())


def test_another_accounts_key_is_not_found(api, buyer, other_buyer):
    token = token_of(api_token_for(buyer))
    detail = reverse("api:token-detail", args=[token.public_id])
    error_of(api(other_buyer).get(detail), 404, "not_found")
    error_of(api(other_buyer).delete(detail), 404, "not_found")
    rotate = reverse("api:token-rotate", args=[token.public_id])
    error_of(api(other_buyer).post(rotate), 404, "not_found")
    token.refresh_from_db()
    assert token.revoked_at is None


def test_staff_revoke_any_key_in_the_staff_desk(client, staff, buyer, caplog):
    key = api_token_for(buyer)
    caplog.set_level(logging.INFO, logger="refundportal.security")
    caplog.clear()
    client.force_login(staff)
    response = client.post(
        reverse("admin:orders_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token_of(key).pk]},
    )
    assert response.status_code == 302
    error_of(keyed(key).get(LIST_URL), 401, "not_authenticated")
    (event,) = security_events(caplog, "api_token_revoked")
    assert event.event_how == "admin"
    assert admin_site.is_registered(ApiToken)


def test_the_token_list_costs_the_same_at_n_and_3n(api, buyer, django_assert_num_queries):
    for n in (2, 6):
        while ApiToken.objects.filter(user=buyer).count() < n:
            api_token_for(buyer)
        with django_assert_num_queries(2):  # the count and the page
            assert len(api(buyer).get(LIST_URL).json()["results"]) == n


# --- scopes ------------------------------------------------------------------------------------


@pytest.fixture
def accounts(buyer, seller, staff, marketplace):
    return {"buyer": buyer, "seller": seller, "staff": staff, "marketplace": marketplace}


def test_scopes_narrow_the_role_and_never_widen_it(accounts):
    """Every account kind × every set of token scopes × every scope, against ROLE_RIGHTS."""
    for (role, user), size in itertools.product(accounts.items(), range(len(SCOPES) + 1)):
        assert api_scopes(user=user, token=None) == ROLE_RIGHTS[role], role
        for chosen in itertools.combinations(SCOPES, size):
            token = ApiToken(user=user, scopes=list(chosen))
            for scope in SCOPES:
                allowed = scope in ROLE_RIGHTS[role] and scope in chosen
                refusal = api_scope_refusal(user=user, token=token, scope=scope)
                assert (refusal is None) == allowed, (role, chosen, scope)


def _declared_scope(route: Any, method: str) -> str | None:
    if method == "get":
        return "read"
    return getattr(route.view_class, "token_scope", "act")


def _unsafe_api_calls() -> list[tuple[Any, str, str]]:
    calls = []
    for route in api_routes():
        values = dict.fromkeys(route.params, "00000000-0000-0000-0000-000000000000")
        url = fill(route, values)
        for method in ("post", "put", "patch", "delete"):
            if hasattr(route.view_class, method):
                calls.append((route, method, url))
    return calls


def test_every_write_endpoint_checks_the_tokens_scope(staff):
    """Staff hold every scope, so a refusal here is the token's narrowing alone: a key without
    the endpoint's scope is refused before anything is looked up or written."""
    keys = {scope: api_token_for(staff, scopes=[scope]) for scope in SCOPES}
    calls = _unsafe_api_calls()
    assert {_declared_scope(r, m) for r, m, _ in calls} >= {"act", "decide", "marketplace"}
    for route, method, url in calls:
        declared = _declared_scope(route, method)
        for scope, key in keys.items():
            response = getattr(keyed(key), method)(url, {}, format="json")
            scope_refused = (
                response.status_code == 403
                and "scopes do not include" in response.json()["error"]["message"]
            )
            expected = declared is not None and declared != scope
            assert scope_refused == expected, (route.key, method, scope, response.content)


def test_the_declared_scopes_of_the_staff_and_feed_endpoints():
    declared = {(r.key, m): _declared_scope(r, m) for r, m, _ in _unsafe_api_calls()}
    assert declared[("api:order-list", "post")] == "marketplace"
    assert declared[("api:order-ship", "post")] == "marketplace"
    assert declared[("api:order-deliver", "post")] == "marketplace"
    assert declared[("api:dispute-decide", "post")] == "decide"
    assert declared[("api:dispute-request-info", "post")] == "decide"
    assert declared[("api:order-cancel", "post")] == "act"
    assert declared[("api:refund-accept", "post")] == "act"


def test_a_read_only_key_reads_but_does_not_act(buyer, seller):
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    key = api_token_for(buyer, scopes=["read"])
    assert keyed(key).get(f"/api/v1/orders/{order.number}/").status_code == 200
    response = keyed(key).post(f"/api/v1/orders/{order.number}/cancel/")
    assert "'act'" in error_of(response, 403, "permission_denied")["message"]
    assert order.__class__.objects.get(pk=order.pk).status == "paid"


def test_without_a_token_object_the_role_has_its_full_rights(client, buyer, seller, staff):
    # given a buyer signed in with the session (no token object) and one through force_authenticate
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    client.force_login(buyer)
    forced = APIClient()
    forced.force_authenticate(seller)

    # then each acts as its party
    url = f"/api/v1/orders/{order.number}/messages/"
    assert client.post(url, {"body": "Hello"}, content_type="application/json").status_code == 201
    assert forced.post(url, {"body": "Hi"}, format="json").status_code == 201
    assert api_scopes(user=staff, token=None) == ROLE_RIGHTS["staff"]


def test_the_marketplace_never_acts_as_a_party(marketplace, seller, staff):
    """Its account, by key or without a token object, on an order it is the buyer of; and a
    staff buyer's key narrowed to the feed."""
    forced = APIClient()
    forced.force_authenticate(marketplace)
    callers = [
        (keyed(api_token_for(marketplace)), marketplace),
        (forced, marketplace),
        (keyed(api_token_for(staff, scopes=["marketplace", "read"])), staff),
    ]
    for client, named_buyer in callers:
        order = OrderFactory(buyer=named_buyer, shop=seller.shops.get())
        # it reads the order and cannot cancel it or write on its thread as its buyer ...
        assert client.get(f"/api/v1/orders/{order.number}/").status_code == 200
        for action, body in (("cancel", None), ("messages", {"body": "x"})):
            response = client.post(f"/api/v1/orders/{order.number}/{action}/", body, format="json")
            error_of(response, 403, "permission_denied")
        # ... but reports its shipment
        shipped = client.post(
            f"/api/v1/orders/{order.number}/ship/",
            {"carrier": "SF", "tracking_number": "SF1"},
            format="json",
        )
        assert shipped.status_code == 200, shipped.content


def test_a_key_cannot_mint_or_take_over_a_wider_one(buyer):
    wide = token_of(api_token_for(buyer, scopes=["read", "act"]))
    narrow = api_token_for(buyer, scopes=["read"])

    # a read-only key asking for more is refused; asking for nothing gets what it has
    error_of(
        keyed(narrow).post(LIST_URL, {"scopes": ["act"]}, format="json"), 403, "permission_denied"
    )
    assert keyed(narrow).post(LIST_URL, {}, format="json").json()["scopes"] == ["read"]
    # it can neither rotate nor revoke the wider key
    error_of(
        keyed(narrow).post(reverse("api:token-rotate", args=[wide.public_id])),
        403,
        "permission_denied",
    )
    error_of(
        keyed(narrow).delete(reverse("api:token-detail", args=[wide.public_id])),
        403,
        "permission_denied",
    )
    wide.refresh_from_db()
    assert wide.revoked_at is None


def test_an_account_cannot_grant_what_its_role_lacks(api, buyer):
    response = api(buyer).post(LIST_URL, {"scopes": ["decide"]}, format="json")
    assert "decide" in error_of(response, 403, "permission_denied")["message"]
    error_of(
        api(buyer).post(LIST_URL, {"scopes": ["root"]}, format="json"), 400, "validation_error"
    )
    assert not ApiToken.objects.exists()


def test_a_disabled_account_keys_stop_working(buyer):
    key = api_token_for(buyer)
    buyer.is_active = False
    buyer.save()
    error_of(keyed(key).get(LIST_URL), 401, "not_authenticated")


# --- the operator's command --------------------------------------------------------------------


def test_an_operator_issues_the_marketplace_key(marketplace, caplog):
    caplog.set_level(logging.INFO, logger="refundportal.security")
    caplog.clear()
    out, err = StringIO(), StringIO()
    call_command(
        "api_token_issue",
        "--user",
        marketplace.email.upper(),
        "--scopes",
        "marketplace,read",
        "--days",
        "90",
        stdout=out,
        stderr=err,
    )
    key = out.getvalue().strip()
    token = token_of(key)
    assert token.scopes == ["read", "marketplace"]
    assert token.expires_at - token.created_at == timedelta(days=90)
    assert key not in err.getvalue()
    assert keyed(key).get("/api/v1/orders/").status_code == 200
    (event,) = security_events(caplog, "api_token_created")
    assert event.event_how == "command"


def test_the_command_refuses_scopes_the_account_cannot_have(marketplace):
    with pytest.raises(CommandError, match="act"):
        call_command("api_token_issue", "--user", marketplace.email, "--scopes", "act")
    with pytest.raises(CommandError, match="No account"):
        call_command("api_token_issue", "--user", "nobody@example.com")
    assert not ApiToken.objects.exists()
