"""Who may do what: every API endpoint and every page × every persona, from the URL conf.

The routes are walked from `django.urls.get_resolver()`; each must have an entry in `API` or
`PAGES` below (a new endpoint without one fails `test_every_route_has_an_expectation`), and an
API entry must name exactly the methods its view implements. Each cell is one request, made in
a savepoint that is rolled back afterwards, so every persona meets the objects in the state the
entry was written for. The rules (docs/api.md, Conventions; docs/architecture.md, Permissions):

* an object the persona may not see (another buyer's or seller's) answers 404;
* an object the persona sees, but an action that is not theirs, answers 403;
* anonymous: the API answers 401 in the error envelope, a page redirects to the login page;
* a refused request writes nothing (no audit event).

Admin, static files and the schema/docs are outside the walk; the schema and the docs are
checked at the end, the admin in `test_audit_trail.py` and the apps' own admin tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import Notification
from notifications.services import notifications_fan_out
from orders.models import Event
from orders.services import api_token_issue
from refunds import services as refund_services
from refunds.evidence import evidence_add
from tests.disputes.factories import dispute_for, rejected_case, with_statement
from tests.orders.factories import OrderFactory, ingest_body
from tests.refunds.factories import file_refund, png_bytes

from .urlwalk import Route, all_routes, fill

A, B, OB, S, OS, ST = "anonymous", "buyer", "other_buyer", "seller", "other_seller", "staff"
PERSONAS = (A, B, OB, S, OS, ST)
LOGIN = "login"  # a redirect to the login page
ANY_OK = "ok"  # 200, or a redirect that is not to the login page (a page's POST succeeded)


@dataclass(frozen=True)
class Cell:
    """One method of one route: which object it is called on, with what, and the answers."""

    obj: str  # a key of the world: whose ids fill the URL
    expect: dict[str, Any]
    body: Callable[[], dict[str, Any]] | None = None
    multipart: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def answers(**by_persona: Any) -> dict[str, Any]:
    assert set(by_persona) == set(PERSONAS), sorted(set(PERSONAS) ^ set(by_persona))
    return by_persona


# --- the API ------------------------------------------------------------------------------------


def api_list(ok: int = 200) -> dict[str, Any]:
    return answers(anonymous=401, buyer=ok, other_buyer=ok, seller=ok, other_seller=ok, staff=ok)


def api_own(ok: int = 200) -> dict[str, Any]:
    """The buyer's own thing: nobody else, staff included, finds it."""
    return answers(
        anonymous=401, buyer=ok, other_buyer=404, seller=404, other_seller=404, staff=404
    )


def api_read() -> dict[str, Any]:
    """Parties and staff see it; strangers do not know it exists."""
    return answers(
        anonymous=401, buyer=200, other_buyer=404, seller=200, other_seller=404, staff=200
    )


def api_party(party: str, ok: int = 200, staff: int = 403) -> dict[str, Any]:
    """The party's own action; the other party and staff see the object but may not act."""
    other = S if party == B else B
    return answers(**{A: 401, party: ok, other: 403, OB: 404, OS: 404, ST: staff})


def api_both_parties(ok: int = 201, staff: int = 403) -> dict[str, Any]:
    return answers(
        anonymous=401, buyer=ok, other_buyer=404, seller=ok, other_seller=404, staff=staff
    )


def api_staff(ok: int = 200) -> dict[str, Any]:
    """Staff work on disputes: an account whose role never may (scope `decide`) is refused by
    role (403) before any dispute is looked up, like the feed below."""
    return answers(
        anonymous=401, buyer=403, other_buyer=403, seller=403, other_seller=403, staff=ok
    )


def api_feed(ok: int = 200) -> dict[str, Any]:
    """The marketplace feed's endpoints: refused by role (403) before any order is looked up,
    so the answer says nothing about whether the order exists."""
    return answers(
        anonymous=401, buyer=403, other_buyer=403, seller=403, other_seller=403, staff=ok
    )


def png() -> dict[str, Any]:
    return {"file": SimpleUploadedFile("photo.png", png_bytes(), "image/png"), "kind": "photo"}


API: dict[str, dict[str, Cell]] = {
    "api:order-list": {
        "get": Cell("order", api_list()),
        # Orders come from the marketplace feed (staff or its token); a party is told 403.
        "post": Cell(
            "order",
            answers(
                anonymous=401, buyer=403, other_buyer=403, seller=403, other_seller=403, staff=201
            ),
            body=lambda: ingest_body(number="MATRIX-1"),
        ),
    },
    # Batches answer 200 with a result per item; a party is refused (403) as for one order.
    "api:order-batch": {
        "post": Cell(
            "order",
            api_feed(),
            body=lambda: {"orders": [ingest_body(number="MATRIX-B1")]},
        )
    },
    "api:order-event-batch": {
        "post": Cell(
            "fresh_order",
            api_feed(),
            body=lambda: {
                "events": [
                    {"number": "MATRIX-NONE", "type": "delivered", "at": timezone.now().isoformat()}
                ]
            },
        )
    },
    "api:order-detail": {"get": Cell("order", api_read())},
    "api:order-ship": {
        "post": Cell(
            "fresh_order", api_feed(), body=lambda: {"carrier": "SF", "tracking_number": "SF9"}
        )
    },
    "api:order-deliver": {"post": Cell("fresh_order", api_feed(), body=dict)},
    "api:order-cancel": {"post": Cell("fresh_order", api_party(B))},
    "api:order-cancel-out-of-stock": {"post": Cell("fresh_order", api_party(S))},
    "api:order-messages": {
        "get": Cell("order", api_read()),
        "post": Cell("order", api_both_parties(), body=lambda: {"body": "Hello"}),
    },
    "api:refund-list": {
        "get": Cell("case", api_list()),
        # Filing names an order: another buyer's is not found, the seller's own order is not
        # theirs to file on.
        "post": Cell(
            "fresh_order",
            api_party(B, ok=201),
            body=lambda: {
                "order": WORLD["fresh_order"].number,
                "reason": "changed_mind",
                "amount": "10.00",
                "description": "x",
                "return_item": False,
            },
        ),
    },
    "api:refund-detail": {"get": Cell("case", api_read())},
    "api:refund-accept": {"post": Cell("case", api_party(S))},
    "api:refund-offer": {"post": Cell("case", api_party(S), body=lambda: {"amount": "5.00"})},
    "api:refund-reject": {"post": Cell("case", api_party(S), body=lambda: {"reason": "No."})},
    "api:refund-confirm-return": {"post": Cell("shipped_return", api_party(S))},
    "api:refund-accept-offer": {"post": Cell("offer", api_party(B))},
    "api:refund-decline-offer": {"post": Cell("offer", api_party(B))},
    "api:refund-withdraw": {"post": Cell("case", api_party(B))},
    "api:refund-ship-return": {
        "post": Cell(
            "return", api_party(B), body=lambda: {"carrier": "SF", "tracking_number": "SF7"}
        )
    },
    "api:refund-messages": {
        "get": Cell("case", api_read()),
        "post": Cell("case", api_both_parties(), body=lambda: {"body": "Hello"}),
    },
    "api:refund-evidence": {
        "get": Cell("case", api_read()),
        # Staff may add files to a case too (docs/rules.md, Evidence files: buyer, seller and
        # staff).
        "post": Cell("case", api_both_parties(staff=201), body=png, multipart=True),
    },
    "api:dispute-list": {
        "get": Cell("dispute", api_list()),
        "post": Cell(
            "closed_case",
            api_party(B, ok=201),
            body=lambda: {
                "refund": str(WORLD["closed_case"].public_id),
                "statement": "Please.",
                "contact_name": "Bea",
                "contact_email": "buyer@example.com",
                "desired_amount": "10.00",
            },
        ),
    },
    "api:dispute-detail": {"get": Cell("dispute", api_read())},
    "api:dispute-statement": {
        "post": Cell("dispute", api_party(S), body=lambda: {"body": "My side."})
    },
    "api:dispute-messages": {
        "get": Cell("dispute", api_read()),
        "post": Cell("dispute", api_both_parties(staff=201), body=lambda: {"body": "Hi"}),
    },
    "api:dispute-evidence": {
        "get": Cell("dispute", api_read()),
        "post": Cell("dispute", api_both_parties(staff=201), body=png, multipart=True),
    },
    "api:dispute-request-info": {
        "post": Cell("dispute", api_staff(), body=lambda: {"party": "buyer", "question": "Photos?"})
    },
    "api:dispute-withdraw": {"post": Cell("dispute", api_party(B))},
    "api:dispute-decide": {
        "post": Cell(
            "decidable", api_staff(), body=lambda: {"outcome": "buyer", "rationale": "Cracked."}
        )
    },
    "api:notification-list": {"get": Cell("notice", api_list())},
    "api:notification-read-all": {"post": Cell("notice", api_list())},
    # Everyone manages their own API keys; a key is its owner's (the buyer's) and anyone else,
    # staff included, does not find it (staff revoke keys in the staff desk).
    "api:token-list": {
        "get": Cell("api_token", api_list()),
        "post": Cell("api_token", api_list(ok=201), body=lambda: {"name": "matrix"}),
    },
    "api:token-detail": {
        "get": Cell("api_token", api_own()),
        "delete": Cell("api_token", api_own(ok=204)),
    },
    "api:token-rotate": {"post": Cell("api_token", api_own(ok=201))},
    # A notice is its recipient's (the buyer's); anyone else, staff included, does not find it.
    "api:notification-read": {
        "post": Cell(
            "notice",
            answers(
                anonymous=401, buyer=200, other_buyer=404, seller=404, other_seller=404, staff=404
            ),
        )
    },
}


# --- the pages ----------------------------------------------------------------------------------


def page_open() -> dict[str, Any]:
    return answers(
        anonymous=200, buyer=200, other_buyer=200, seller=200, other_seller=200, staff=200
    )


def page_signed_in() -> dict[str, Any]:
    return answers(
        anonymous=LOGIN, buyer=200, other_buyer=200, seller=200, other_seller=200, staff=200
    )


def page_read() -> dict[str, Any]:
    return answers(
        anonymous=LOGIN, buyer=200, other_buyer=404, seller=200, other_seller=404, staff=200
    )


def page_party(party: str, other: Any = 400, staff: Any = 400) -> dict[str, Any]:
    """A party's form: done (redirect); refused with the reason on the page (400) or 403."""
    other_party = S if party == B else B
    return answers(**{A: LOGIN, party: ANY_OK, other_party: other, OB: 404, OS: 404, ST: staff})


PAGES: dict[str, dict[str, Cell]] = {
    "home": {"get": Cell("order", page_open())},
    "login": {"get": Cell("order", page_open())},
    "logout": {
        "post": Cell(
            "order",
            answers(
                anonymous=ANY_OK,
                buyer=ANY_OK,
                other_buyer=ANY_OK,
                seller=ANY_OK,
                other_seller=ANY_OK,
                staff=ANY_OK,
            ),
        )
    },
    # Staff show their second factor here; a session that needs none (or has shown it) is sent
    # on to where it was going.
    "second-factor": {
        "get": Cell(
            "order",
            answers(
                anonymous=LOGIN,
                buyer=ANY_OK,
                other_buyer=ANY_OK,
                seller=ANY_OK,
                other_seller=ANY_OK,
                staff=ANY_OK,
            ),
        )
    },
    "password_change": {"get": Cell("order", page_signed_in())},
    "password_change_done": {"get": Cell("order", page_signed_in())},
    "password_reset": {"get": Cell("order", page_open())},
    "password_reset_done": {"get": Cell("order", page_open())},
    "password_reset_confirm": {
        "get": Cell("order", page_open(), extra={"uidb64": "MQ", "token": "set-password"})
    },
    "password_reset_complete": {"get": Cell("order", page_open())},
    # Stripe's webhooks: no session opens it; without Stripe's signature everyone gets a 400.
    "stripe-webhook": {
        "post": Cell(
            "order",
            answers(
                anonymous=400, buyer=400, other_buyer=400, seller=400, other_seller=400, staff=400
            ),
        )
    },
    # A shop owner's own policy; an account without a shop has none to set.
    "seller-policy": {
        "get": Cell(
            "order",
            answers(
                anonymous=LOGIN, buyer=404, other_buyer=404, seller=200, other_seller=200, staff=404
            ),
        )
    },
    "seller-public": {"get": Cell("order", page_open())},
    "seller-dashboard": {"get": Cell("order", page_signed_in())},
    "order-list": {"get": Cell("order", page_signed_in())},
    "order-detail": {"get": Cell("order", page_read())},
    "order-invoice": {"get": Cell("order", page_read())},
    "order-message": {
        "post": Cell("order", page_party(B, other=ANY_OK), body=lambda: {"body": "Hello"})
    },
    "order-cancel": {"post": Cell("fresh_order", page_party(B))},
    "order-cancel-out-of-stock": {"post": Cell("fresh_order", page_party(S))},
    "refund-start": {"get": Cell("fresh_order", page_party(B, other=403, staff=403))},
    "refund-details": {"get": Cell("fresh_order", page_party(B, other=403, staff=403))},
    "refund-review": {"get": Cell("fresh_order", page_party(B, other=403, staff=403))},
    "case-detail": {"get": Cell("case", page_read())},
    "case-slip": {"get": Cell("return", page_read())},
    "case-message": {
        "post": Cell("case", page_party(B, other=ANY_OK), body=lambda: {"body": "Hello"})
    },
    "case-evidence": {"post": Cell("case", page_party(B, other=ANY_OK, staff=ANY_OK), body=png)},
    "case-accept[action=accept]": {"post": Cell("case", page_party(S))},
    "case-offer[action=offer]": {
        "post": Cell("case", page_party(S), body=lambda: {"amount": "5.00"})
    },
    "case-reject[action=reject]": {
        "post": Cell("case", page_party(S), body=lambda: {"reason": "No."})
    },
    "case-confirm-return[action=confirm-return]": {"post": Cell("shipped_return", page_party(S))},
    "case-accept-offer[action=accept-offer]": {"post": Cell("offer", page_party(B))},
    "case-decline-offer[action=decline-offer]": {"post": Cell("offer", page_party(B))},
    "case-withdraw[action=withdraw]": {"post": Cell("case", page_party(B))},
    "case-ship-return[action=ship-return]": {
        "post": Cell(
            "return", page_party(B), body=lambda: {"carrier": "SF", "tracking_number": "SF7"}
        )
    },
    "refunds_files:evidence-download": {"get": Cell("evidence", page_read())},
    "dispute-new": {"get": Cell("closed_case", page_party(B, other=403, staff=403))},
    "dispute-detail": {"get": Cell("dispute", page_read())},
    "dispute-statement": {
        "post": Cell("dispute", page_party(S), body=lambda: {"body": "My side."})
    },
    "dispute-message": {
        "post": Cell(
            "dispute", page_party(B, other=ANY_OK, staff=ANY_OK), body=lambda: {"body": "Hi"}
        )
    },
    "dispute-evidence": {
        "post": Cell("dispute", page_party(B, other=ANY_OK, staff=ANY_OK), body=png)
    },
    "dispute-withdraw": {"post": Cell("dispute", page_party(B))},
    "notifications:list": {"get": Cell("notice", page_signed_in())},
    "notifications:read-all": {
        "post": Cell(
            "notice",
            answers(
                anonymous=LOGIN,
                buyer=ANY_OK,
                other_buyer=ANY_OK,
                seller=ANY_OK,
                other_seller=ANY_OK,
                staff=ANY_OK,
            ),
        )
    },
    # Staff's preview of every email; to anyone else it does not exist.
    "notifications:preview": {
        "get": Cell(
            "notice",
            answers(
                anonymous=404, buyer=404, other_buyer=404, seller=404, other_seller=404, staff=200
            ),
        )
    },
    # One email's HTML, framed by the preview; to anyone but staff it does not exist either.
    "notifications:preview-email": {
        "get": Cell(
            "notice",
            answers(
                anonymous=404, buyer=404, other_buyer=404, seller=404, other_seller=404, staff=200
            ),
        )
    },
    "notifications:read": {
        "post": Cell(
            "notice",
            answers(
                anonymous=LOGIN,
                buyer=ANY_OK,
                other_buyer=404,
                seller=404,
                other_seller=404,
                staff=404,
            ),
        )
    },
}


# --- the world the cells act on ------------------------------------------------------------------

WORLD: dict[str, Any] = {}


@pytest.fixture
def world(buyer, other_buyer, seller, other_seller, staff):
    shop = seller.shops.get()
    case = file_refund(OrderFactory(buyer=buyer, shop=shop), amount="20.00")
    offer = file_refund(OrderFactory(buyer=buyer, shop=shop), amount="30.00")
    refund_services.refund_offer(case=offer, actor=seller, amount="10.00")
    ret = refund_services.refund_accept(
        case=file_refund(OrderFactory(buyer=buyer, shop=shop), return_item=True), actor=seller
    )
    shipped = refund_services.refund_accept(
        case=file_refund(OrderFactory(buyer=buyer, shop=shop), return_item=True), actor=seller
    )
    shipped = refund_services.refund_ship_return(
        case=shipped, actor=buyer, carrier="SF", tracking_number="SF1"
    )
    dispute = dispute_for(buyer=buyer, seller=seller)
    decidable = with_statement(dispute_for(buyer=buyer, seller=seller))
    evidence = evidence_add(
        case=case, actor=buyer, upload=SimpleUploadedFile("photo.png", png_bytes(), "image/png")
    )
    notifications_fan_out()
    WORLD.clear()
    WORLD.update(
        {
            "order": case.order,
            "case": case,
            "offer": offer,
            "return": ret,
            "shipped_return": shipped,
            "fresh_order": OrderFactory(buyer=buyer, shop=shop),
            "closed_case": rejected_case(buyer=buyer, seller=seller),
            "dispute": dispute,
            "decidable": decidable,
            "evidence": evidence,
            "notice": Notification.objects.filter(recipient=buyer).first(),
            "api_token": api_token_issue(
                user=buyer, scopes=["read"], via_token=None, actor=buyer, how="test"
            ).token,
            "shop": shop,
        }
    )
    users = {B: buyer, OB: other_buyer, S: seller, OS: other_seller, ST: staff}
    yield users
    WORLD.clear()


def url_values(obj: str, cell: Cell) -> dict[str, Any]:
    target = WORLD[obj]
    values: dict[str, Any] = {"slug": WORLD["shop"].slug, **cell.extra}
    if obj in {"order", "fresh_order"}:
        values["number"] = target.number
    elif obj in {"notice", "api_token"}:
        values["public_id"] = target.public_id
    elif obj == "evidence":
        values["evidence_id"] = target.public_id
    elif obj in {"dispute", "decidable"}:
        values["dispute_id"] = target.public_id
    else:
        values["public_id"] = values["case_id"] = target.public_id
    if "number" not in values:
        values["number"] = WORLD["order"].number
    return values


def expectation_of(route: Route) -> dict[str, Cell]:
    table = API if route.is_api else PAGES
    return table.get(route.key, {})


def test_every_route_has_an_expectation():
    routes = {r.key: r for r in all_routes()}
    missing = sorted(k for k, r in routes.items() if not expectation_of(r))
    assert not missing, f"routes without an authorization expectation: {missing}"
    stale = sorted((set(API) | set(PAGES)) - set(routes))
    assert not stale, f"expectations for routes that no longer exist: {stale}"
    for route in routes.values():
        if route.is_api:
            view = route.view_class
            implemented = {m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
            assert implemented == set(API[route.key]), (route.key, implemented)


def _client(persona: str, users: dict[str, Any], api: bool) -> Any:
    if api:
        client = APIClient()
        if persona != A:
            client.force_authenticate(users[persona])
        return client
    client = Client()
    if persona != A:
        client.force_login(users[persona])
    return client


def _answer(response: Any) -> Any:
    if response.status_code in (301, 302, 303):
        location = response.get("Location", "")
        return LOGIN if location.startswith(reverse("login")) else ANY_OK
    if 200 <= response.status_code < 300:
        return 200 if response.status_code == 200 else response.status_code
    return response.status_code


def _matches(expected: Any, got: Any, response: Any) -> bool:
    if expected == ANY_OK:
        return got in (ANY_OK, 200, 201)
    return expected == got


def run_matrix(users: dict[str, Any], routes: list[Route]) -> list[str]:
    dump = os.environ.get("MATRIX_DUMP") == "1"
    problems = []
    api_clients = {p: _client(p, users, api=True) for p in PERSONAS}
    page_clients = {p: _client(p, users, api=False) for p in PERSONAS}
    for route in routes:
        for method, cell in sorted(expectation_of(route).items()):
            url = fill(route, url_values(cell.obj, cell))
            row = {}
            for persona in PERSONAS:
                client = api_clients[persona] if route.is_api else page_clients[persona]
                if persona != A and not route.is_api and "_auth_user_id" not in client.session:
                    # The previous cell signed it out (logout): sign in again.
                    client = page_clients[persona] = _client(persona, users, api=False)
                before = Event.objects.count()
                savepoint = transaction.savepoint()
                try:
                    body = cell.body() if cell.body else {}
                    if route.is_api:
                        response = getattr(client, method)(
                            url, body, format="multipart" if cell.multipart else "json"
                        )
                    else:
                        response = getattr(client, method)(url, body)
                    got = _answer(response)
                    wrote = Event.objects.count() - before
                finally:
                    transaction.savepoint_rollback(savepoint)
                row[persona] = got
                expected = cell.expect[persona]
                if not _matches(expected, got, response):
                    problems.append(
                        f"{method.upper()} {route.key} as {persona}: expected "
                        f"{expected}, got {got} ({response.content[:160]!r})"
                    )
                refused = got == LOGIN or (isinstance(got, int) and got >= 400)
                if refused and wrote:
                    problems.append(
                        f"{method.upper()} {route.key} as {persona} was refused "
                        f"({got}) but wrote {wrote} audit event(s)"
                    )
                if route.is_api and isinstance(got, int) and got >= 400:
                    error = response.json().get("error", {})
                    if not error.get("code") or "message" not in error:
                        problems.append(f"{route.key} as {persona}: {got} outside the envelope")
            if dump:
                print(
                    f"{method.upper():5} {route.key:45} "
                    + " ".join(f"{p[:5]}={row[p]}" for p in PERSONAS)
                )
    return problems


@pytest.mark.django_db
def test_api_answers_each_persona_as_expected(world):
    routes = [r for r in all_routes() if r.is_api]
    problems = run_matrix(world, routes)
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_pages_answer_each_persona_as_expected(world):
    routes = [r for r in all_routes() if not r.is_api]
    problems = run_matrix(world, routes)
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_page_forms_need_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world[S])
    url = reverse("case-accept", kwargs={"case_id": WORLD["case"].public_id})
    assert client.post(url).status_code == 403
    assert not Event.objects.filter(
        case_id=WORLD["case"].public_id, kind="refund.accepted"
    ).exists()


def test_the_schema_and_the_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/refunds/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
