"""Content-Security-Policy and Permissions-Policy on every page; no inline code in any template.

Every page of the URL conf (walked, not listed), the staff desk's pages and the API docs answer
with a Content-Security-Policy whose script-src and style-src allow neither 'unsafe-inline' nor
'unsafe-eval', and with a Permissions-Policy. The pages' HTML and the templates carry no
`style="…"`, `<style>`, inline `<script>`, `on…=` handler or `javascript:` URL, which such a policy
would block (docs/architecture.md, Browser policies). Emails are not pages: their templates need
inline styles and are left out, and the one route that shows an email's HTML (the staff preview)
serves it sandboxed, without script. The real browser's view is in
tests/portal/test_browser_policies.py.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from notifications.models import Notification
from notifications.tasks import notifications_dispatch
from refunds import services as refund_services
from refunds.evidence import evidence_add
from tests.disputes.factories import dispute_for, with_statement
from tests.orders.factories import OrderFactory
from tests.refunds.factories import png_bytes

from .urlwalk import fill, page_routes

BASE_DIR = Path(settings.BASE_DIR)
# Shows an email's HTML, which needs inline styles; served sandboxed and without script.
EMAIL_BODIES = {"notifications:preview-email"}
UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*", "data:", "http:", "https:")


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name.lower()] = values
    return parsed


def assert_strict_policy(response: Any, where: str) -> None:
    header = response.get("Content-Security-Policy")
    assert header, f"{where}: no Content-Security-Policy"
    policy = directives(header)
    for name in ("script-src", "style-src"):
        values = policy.get(name, policy.get("default-src"))
        assert values, f"{where}: {name} is not restricted"
        assert not set(values) & set(UNSAFE), f"{where}: {name} {' '.join(values)}"
    assert policy.get("object-src", policy.get("default-src")) == ["'none'"], where
    if "sandbox" not in policy:  # a sandboxed file or email has no script and no origin
        assert policy.get("base-uri") == ["'none'"], where
        assert policy.get("frame-ancestors") == ["'none'"], where
    assert "camera=()" in response.get("Permissions-Policy", ""), f"{where}: Permissions-Policy"


class InlineCode(HTMLParser):
    """Collects what a strict policy blocks: inline styles and scripts, handlers, javascript:."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "style":
            self.found.append("<style>")
        if tag == "script" and not names.get("src"):
            kind = (names.get("type") or "").lower()
            if kind not in ("application/json", "application/ld+json"):
                self.found.append("inline <script>")
        for name, value in attrs:
            if name == "style":
                self.found.append(f'<{tag} style="{value}">')
            if re.fullmatch(r"on[a-z]+", name):
                self.found.append(f"<{tag} {name}=…>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def world(buyer, seller, staff) -> dict[str, Any]:
    """Orders, a case with a return, a disputed case with evidence, and everyone's notices."""
    from tests.portal.conftest import delivered_order, file_case

    order = delivered_order(buyer, seller)
    returning = refund_services.refund_accept(
        case=file_case(delivered_order(buyer, seller), buyer, return_item=True), actor=seller
    )
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    evidence = evidence_add(
        case=dispute.case,
        actor=buyer,
        upload=SimpleUploadedFile("mug.png", png_bytes(), "image/png"),
    )
    OrderFactory(buyer=buyer, shop=seller.shops.get())
    assert notifications_dispatch.apply().successful()
    return {
        "order": order,
        "returning": returning,
        "dispute": dispute,
        "evidence": evidence,
        "users": {"anonymous": None, "buyer": buyer, "seller": seller, "staff": staff},
    }


def test_every_page_has_a_strict_policy_and_no_inline_code(world):
    seen = 0
    for who, user in world["users"].items():
        client = Client()
        if user is not None:
            client.force_login(user)
        notice = Notification.objects.filter(recipient=user).first() if user else None
        for case in (world["returning"], world["dispute"].case):
            values = {
                "number": case.order.number,
                "case_id": case.public_id,
                "dispute_id": world["dispute"].public_id,
                "evidence_id": world["evidence"].public_id,
                "slug": "sams-shop",
                "public_id": notice.public_id if notice else case.public_id,
                "uidb64": "MQ",
                "token": "set-password",
            }
            for route in page_routes():
                url = fill(route, values)
                response = client.get(url)
                where = f"GET {url} as {who} ({response.status_code})"
                if route.name in EMAIL_BODIES:
                    continue
                assert_strict_policy(response, where)
                if response.status_code == 200 and "html" in response.get("Content-Type", ""):
                    assert not inline_code(response.content.decode()), where
                    seen += 1
    assert seen >= 40, seen


def test_the_staff_desk_and_the_api_docs_have_a_strict_policy_and_no_inline_code(world):
    client = Client()
    client.force_login(world["users"]["staff"])
    dispute, case = world["dispute"], world["dispute"].case
    urls = [
        reverse("admin:login"),
        reverse("admin:index"),
        reverse("api-docs"),
        reverse("admin:disputes_dispute_decide", args=[dispute.pk]),
        reverse("admin:disputes_dispute_request_info", args=[dispute.pk]),
    ]
    for model, obj in [
        ("disputes_dispute", dispute),
        ("refunds_refundcase", case),
        ("refunds_evidence", world["evidence"]),
        ("orders_order", case.order),
        ("orders_event", case.order.events.first()),
        ("notifications_notification", Notification.objects.first()),
    ]:
        urls += [
            reverse(f"admin:{model}_changelist"),
            reverse(f"admin:{model}_change", args=[obj.pk]),
        ]
    for url in urls:
        response = (Client() if url == reverse("admin:login") else client).get(url)
        assert response.status_code == 200, url
        assert_strict_policy(response, url)
        assert not inline_code(response.content.decode()), url
    script = client.get(reverse("api-docs") + "?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert_strict_policy(script, "the API docs' script")


def test_the_email_preview_frames_each_email_sandboxed_and_without_script(world):
    client = Client()
    client.force_login(world["users"]["staff"])

    page = client.get(reverse("notifications:preview") + "?kind=dispute.opened")
    assert "frame-src 'self'" in page["Content-Security-Policy"]
    assert "srcdoc" not in page.content.decode()
    email_url = reverse("notifications:preview-email")
    assert f'src="{email_url}?kind=dispute.opened&amp;role=seller"' in page.content.decode()

    email = client.get(email_url + "?kind=dispute.opened&role=seller")
    assert email.status_code == 200
    assert "add your statement" in email.content.decode()
    policy = directives(email["Content-Security-Policy"])
    assert "sandbox" in policy and policy["script-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'self'"] and email["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize("who", ["anonymous", "buyer", "seller"])
def test_the_email_preview_is_not_found_for_anyone_but_staff(world, who):
    client = Client()
    if world["users"][who] is not None:
        client.force_login(world["users"][who])
    assert client.get(reverse("notifications:preview-email")).status_code == 404


TEMPLATE_DIRS = [BASE_DIR / "templates", *BASE_DIR.glob("*/templates")]
FORBIDDEN = {
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "<style> element": re.compile(r"<style\b", re.IGNORECASE),
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE),
    "on… handler": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def page_templates() -> list[Path]:
    found = [
        path
        for folder in TEMPLATE_DIRS
        for path in folder.rglob("*.html")
        if "emails" not in path.relative_to(folder).parts
    ]
    assert len(found) > 30, found
    return found


def test_no_template_carries_inline_style_script_or_handlers():
    offences = [
        f"{path.relative_to(BASE_DIR)}:{text[: m.start()].count(chr(10)) + 1}: {what}"
        for path in page_templates()
        for text in [path.read_text()]
        for what, pattern in FORBIDDEN.items()
        for m in pattern.finditer(text)
    ]
    assert not offences, "\n".join(offences)
