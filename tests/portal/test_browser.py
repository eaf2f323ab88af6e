"""Real-browser walks through the portal: Debian's chromium driven by playwright.

Skipped when /usr/bin/chromium is missing, except on CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from refunds import services as refund_services
from refunds.models import Evidence, RefundCase, State
from tests.orders.factories import OrderFactory
from tests.portal.conftest import delivered_order, file_case, png_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing on CI: install Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

# playwright's sync API runs an event loop in this thread; the ORM calls here are plain sync.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _session_for(user) -> str:  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def page_for(browser, live_server):  # type: ignore[no-untyped-def]
    """A new browser tab signed in as `user` (by session cookie), at `width` by `height`."""
    contexts = []

    def make(user, *, width: int = 1280, height: int = 900):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        if user is not None:
            context.add_cookies(
                [{"name": "sessionid", "value": _session_for(user), "url": live_server.url}]
            )
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def png_file(tmp_path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "cracked-mug.png"
    path.write_bytes(png_bytes(16))
    return path


def expect(locator):  # type: ignore[no-untyped-def]
    return sync_api.expect(locator)


def test_refund_offer_decline_and_dispute(page_for, live_server, buyer, seller, png_file):
    order = delivered_order(buyer, seller)
    base = live_server.url

    # The buyer signs in through the real form (the one test that does).
    page = page_for(None)
    page.goto(f"{base}/accounts/login/?next=/orders/")
    page.get_by_label("Email").fill("buyer@example.com")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My orders")).to_be_visible()

    # Step 1: the order, from My orders.
    page.get_by_role("link", name="Request a refund").click()
    # Step 2: the reason, with its window.
    expect(page.get_by_text("Each reason has its own time window.")).to_be_visible()
    page.get_by_label("Arrived damaged").check()
    page.get_by_role("button", name="Continue").click()
    # Step 3: amount, return, description, evidence (sent with upload progress).
    page.get_by_label("Amount you want back").fill("40.00")
    page.get_by_label("What happened?").fill("The mug arrived with a cracked handle.")
    page.set_input_files("#id_evidence", str(png_file))
    page.get_by_role("button", name="Review request").click()
    # Step 4: review and submit.
    expect(page.get_by_role("heading", name="Check and submit")).to_be_visible()
    expect(page.get_by_text("cracked-mug.png")).to_be_visible()
    expect(page.get_by_text("40.00 USD")).to_be_visible()
    page.get_by_role("button", name="Submit refund request").click()
    expect(page.get_by_text("Refund request filed.")).to_be_visible()
    expect(page.get_by_role("heading", name="Waiting for Sam's Shop")).to_be_visible()
    expect(page.get_by_role("link", name="cracked-mug.png")).to_be_visible()
    case = RefundCase.objects.get(order=order)
    assert Evidence.objects.filter(case=case).count() == 1

    # The seller offers part of it.
    seller_page = page_for(seller)
    seller_page.goto(f"{base}/seller/")
    expect(seller_page.get_by_text("1 refund request to answer")).to_be_visible()
    seller_page.get_by_role("link", name="Answer the refund request").click()
    seller_page.get_by_label("Amount you offer").fill("15.00")
    seller_page.get_by_role("button", name="Send offer").click()
    expect(seller_page.get_by_text("Offer sent to the buyer.")).to_be_visible()

    # The buyer declines it …
    page.goto(f"{base}/refunds/{case.public_id}/")
    expect(page.get_by_text("Sam's Shop offers 15.00 USD instead of 40.00 USD")).to_be_visible()
    page.get_by_text("Decline the offer…").click()
    page.get_by_role("button", name="Yes, decline the offer").click()
    expect(page.get_by_text("Offer declined.")).to_be_visible()
    expect(page.get_by_role("heading", name="Closed: offer declined or lapsed")).to_be_visible()

    # … and opens a dispute.
    page.get_by_role("link", name="Open a dispute").click()
    expect(page.get_by_text(order.number).first).to_be_visible()
    page.get_by_label("Phone").fill("+49 30 1234567")
    page.get_by_label("What happened, and why").fill("A cracked mug is worth more than 15.")
    page.set_input_files("#id_file_chat", str(png_file))
    page.get_by_role("button", name="Open the dispute").click()
    expect(page.get_by_text("Dispute opened.")).to_be_visible()
    expect(page.get_by_text("Seller's statement due")).to_be_visible()
    expect(page.locator(".countdown").first).to_contain_text("left")
    case.refresh_from_db()
    assert case.state == State.ESCALATED


def test_buyer_cancels_within_24_hours(page_for, live_server, buyer, seller):
    order = OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=timezone.now() - timedelta(hours=3)
    )
    page = page_for(buyer)
    page.goto(f"{live_server.url}/orders/")
    expect(page.get_by_text("Cancel for a full refund at once")).to_be_visible()
    countdown = page.locator("[data-deadline]").first
    assert "h" in countdown.inner_text() and "left" in countdown.inner_text()
    countdown.evaluate("el => { el.textContent = 'stale'; }")
    expect(countdown).to_contain_text("left")  # the browser keeps it live
    page.get_by_role("link", name="Cancel order").click()
    page.get_by_text("Cancel order…").click()
    page.get_by_role("button", name="Yes, cancel the order").click()
    expect(
        page.get_by_text(f"Order {order.number} is cancelled. 59.90 USD goes back to Visa ••4242.")
    ).to_be_visible()
    expect(page.locator(".page-head .badge")).to_have_text("Cancelled")


def test_seller_confirms_a_return(page_for, live_server, buyer, seller):
    case = file_case(delivered_order(buyer, seller), buyer, return_item=True)
    case = refund_services.refund_accept(case=case, actor=seller)
    refund_services.refund_ship_return(
        case=case, actor=buyer, carrier="DHL", tracking_number="JD014600"
    )
    page = page_for(seller)
    page.goto(f"{live_server.url}/seller/")
    expect(page.get_by_text("1 return shipped, awaiting your confirmation")).to_be_visible()
    page.get_by_role("link", name="Confirm the returned item arrived").click()
    expect(page.get_by_text("JD014600").first).to_be_visible()
    page.get_by_role("button", name="The return arrived").click()
    expect(page.get_by_text("Return confirmed; the refund is being paid.")).to_be_visible()
    case.refresh_from_db()
    assert case.state in (State.REFUND_PENDING, State.REFUNDED)


def test_phone_sized_refund_request(page_for, live_server, buyer, seller, png_file):
    order = delivered_order(buyer, seller)
    page = page_for(buyer, width=360, height=740)
    page.goto(f"{live_server.url}/orders/")
    no_sideways_scroll = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_sideways_scroll)
    page.get_by_role("link", name="Request a refund").click()
    assert page.evaluate(no_sideways_scroll)
    page.get_by_label("Changed my mind").check()
    page.get_by_role("button", name="Continue").click()
    assert page.evaluate(no_sideways_scroll)
    page.get_by_label("Yes, I will send it back").check()
    page.set_input_files("#id_evidence", str(png_file))
    page.get_by_role("button", name="Review request").click()
    expect(page.get_by_role("heading", name="Check and submit")).to_be_visible()
    assert page.evaluate(no_sideways_scroll)
    page.get_by_role("button", name="Submit refund request").click()
    expect(page.get_by_text("Refund request filed.")).to_be_visible()
    assert page.evaluate(no_sideways_scroll)
    case = RefundCase.objects.get(order=order)
    assert case.return_item and case.amount == order.total
