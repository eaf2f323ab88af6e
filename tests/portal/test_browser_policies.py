"""The Content-Security-Policy in a real browser: no page trips it, and the pages still look right.

Debian's chromium (through playwright, as in test_browser.py) visits the main pages of the
buyer, the seller and staff, the staff desk (Django admin) and the API docs (Swagger UI), with
the portal's real policy. A `securitypolicyviolation` listener is installed before any page
script runs, and the console is read: a style, script or handler the policy blocks shows up in
one or the other. Each page is opened at phone and desktop widths; the moved styles are checked
by their computed values, and with BROWSER_SCREENSHOTS=<folder> every page is also saved as a
full-page PNG to look at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from disputes import services as dispute_services
from refunds.evidence import evidence_add
from tests.disputes.factories import dispute_for, with_statement
from tests.portal import test_browser as walks
from tests.portal.conftest import delivered_order, file_case, png_upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The real-browser fixtures of test_browser.py: Debian's chromium, a signed-in tab per persona.
browser = walks.browser
page_for = walks.page_for
sync_api = walks.sync_api

WIDTHS = {"phone": (360, 740), "desktop": (1280, 900)}
# Runs before any script of the page (playwright injects it outside the page's policy).
VIOLATIONS_JS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}` +
                           ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});
"""


@pytest.fixture
def world(buyer, seller, staff) -> dict[str, Any]:
    """A buyer with an order, a case with a return on the way and a dispute with a statement."""
    from refunds import services as refund_services

    order = delivered_order(buyer, seller)
    returning = file_case(delivered_order(buyer, seller), buyer, return_item=True)
    returning = refund_services.refund_accept(case=returning, actor=seller)
    dispute = with_statement(dispute_for(buyer=buyer, seller=seller))
    dispute_services.dispute_post_message(
        dispute=dispute, author=buyer, body="The handle broke off.\nPhotos attached."
    )
    evidence_add(case=dispute.case, actor=buyer, upload=png_upload("cracked-mug.png"))
    return {"order": order, "returning": returning, "dispute": dispute}


def pages(world: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(persona, path, a selector the page must show once its scripts ran) of the main pages."""
    order, returning, dispute = world["order"], world["returning"], world["dispute"]
    case = dispute.case
    return [
        ("anonymous", "/", None),
        ("anonymous", reverse("login"), None),
        ("anonymous", reverse("seller-public", args=["sams-shop"]), None),
        ("buyer", reverse("order-list"), None),
        ("buyer", reverse("order-detail", args=[order.number]), None),
        ("buyer", reverse("order-invoice", args=[order.number]), "[data-print]:not([hidden])"),
        ("buyer", reverse("refund-start", args=[order.number]), None),
        ("buyer", reverse("case-detail", args=[returning.public_id]), None),
        ("buyer", reverse("case-slip", args=[returning.public_id]), "[data-print]:not([hidden])"),
        ("buyer", reverse("dispute-new", args=[case.public_id]), None),
        ("buyer", reverse("dispute-detail", args=[dispute.public_id]), None),
        ("buyer", reverse("notifications:list"), None),
        ("seller", reverse("seller-dashboard"), None),
        ("seller", reverse("case-detail", args=[returning.public_id]), None),
        ("seller", reverse("dispute-detail", args=[dispute.public_id]), None),
        ("staff", reverse("notifications:preview") + "?kind=dispute.opened", None),
        ("staff", reverse("admin:index"), None),
        ("staff", reverse("admin:disputes_dispute_changelist"), None),
        ("staff", reverse("admin:disputes_dispute_change", args=[dispute.pk]), None),
        ("staff", reverse("admin:disputes_dispute_decide", args=[dispute.pk]), None),
        ("staff", reverse("admin:refunds_refundcase_change", args=[case.pk]), None),
        ("staff", reverse("api-docs"), ".opblock"),
    ]


def visit(page_for, live_server, who, user, path, ready, width):  # type: ignore[no-untyped-def]
    page = page_for(user, width=WIDTHS[width][0], height=WIDTHS[width][1])
    page.add_init_script(VIOLATIONS_JS)
    console: list[str] = []
    page.on(
        "console",
        lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    response = page.goto(f"{live_server.url}{path}")
    assert response is not None and response.status == 200, f"{path} as {who}: {response}"
    page.wait_for_load_state("networkidle")
    if ready:
        sync_api.expect(page.locator(ready).first).to_be_visible()
    return page, console, failed, response


def test_main_pages_trip_no_policy_and_keep_their_styles(
    page_for, live_server, world, buyer, seller, staff
):
    users = {"anonymous": None, "buyer": buyer, "seller": seller, "staff": staff}
    out = os.environ.get("BROWSER_SCREENSHOTS")
    problems: list[str] = []
    for width in WIDTHS:
        for who, path, ready in pages(world):
            page, console, failed, response = visit(
                page_for, live_server, who, users[who], path, ready, width
            )
            policy = response.headers.get("content-security-policy", "")
            assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
            where = f"{path} as {who} ({width})"
            problems += [f"{where}: {v}" for v in page.evaluate("window.__violations")]
            problems += [f"{where}: console {line}" for line in console]
            problems += [f"{where}: request failed {url}" for url in failed]
            if out:
                name = path.strip("/").replace("/", "_").replace("?", "_") or "home"
                Path(out).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=f"{out}/{who}-{name}-{width}.png", full_page=True)
            page.context.close()
    assert not problems, "\n".join(problems)


def test_moved_styles_still_apply(page_for, live_server, world, buyer, staff):
    order, dispute = world["order"], world["dispute"]
    page = page_for(buyer)

    def style(selector: str, prop: str) -> str:
        return page.locator(selector).first.evaluate(
            f"el => getComputedStyle(el).getPropertyValue('{prop}')"
        )

    page.goto(f"{live_server.url}{reverse('order-detail', args=[order.number])}")
    assert style(".grid--main-side.space-above", "margin-top") == "16px"
    page.goto(f"{live_server.url}{reverse('order-invoice', args=[order.number])}")
    assert style(".actions--toolbar", "margin-bottom") == "16px"
    assert style(".actions--toolbar", "margin-top") == "0px"
    page.goto(f"{live_server.url}{reverse('refund-start', args=[order.number])}")
    assert style(".legend-heading", "font-size") == "17.6px"

    desk = page_for(staff)
    desk.goto(f"{live_server.url}{reverse('admin:disputes_dispute_change', args=[dispute.pk])}")
    assert (
        desk.locator(".desk-text")
        .first.evaluate("el => getComputedStyle(el).whiteSpace")
        .startswith("pre-wrap")
    )
    assert desk.locator("img.desk-thumb").first.evaluate("el => getComputedStyle(el).maxWidth") == (
        "160px"
    )
    desk.goto(f"{live_server.url}{reverse('notifications:preview')}?kind=dispute.opened")
    assert desk.locator("iframe.email-preview").first.evaluate("el => el.offsetHeight") == 520
