"""Screenshots of the main pages at phone (360 px) and desktop (1280 px) widths.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts the portal on a free local port over a temporary SQLite database, seeds it (with the
`seed_demo` management command when the project has one, else with a small data set made here
through the services), signs the personas in by session cookie, and saves full-page PNGs of:
home, my orders, refund step 2, case page, seller dashboard, dispute page and reputation, and the
staff desk's dispute queue. The staff persona signs in as a person does, through the sign-in page
and the second-factor page, with a code computed from the TOTP secret `seed_demo` made.
Needs Debian's chromium at /usr/bin/chromium and the `playwright` Python package.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
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
WIDTHS = {"phone": (360, 740), "desktop": (1280, 900)}
# Elements sticking out of the viewport (a horizontal scrollbar on a phone is a bug).
OVERFLOW_JS = """() => {
  const w = document.documentElement.clientWidth, out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > w + 1 && r.width > 0) {
      out.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') +
               ' right=' + Math.round(r.right));
    }
  }
  return out.slice(0, 8);
}"""


def _setup_django(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'screens.sqlite3'}"
    os.environ.setdefault("REDIS_URL", "")
    os.environ["MEDIA_ROOT"] = str(tmp / "media")
    # Test settings: tasks run eagerly (payouts settle at once) and mail stays in memory.
    os.environ["DJANGO_SETTINGS_MODULE"] = "refundportal.settings.test"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # The test settings make the N+1 detector raise, and its "unused eager load" guess depends on
    # the data (a select_related that the demo's rows happen not to need). Screenshots show the
    # pages as users get them, where the detector is not installed.
    settings.NPLUSONE_RAISE = False
    call_command("migrate", verbosity=0, interactive=False)


def _seed() -> None:
    from django.core.management import call_command, get_commands

    if "seed_demo" in get_commands():
        call_command("seed_demo", verbosity=0)
    else:
        _seed_minimal()


def _seed_minimal() -> None:
    """A buyer and a seller with orders in the states the screenshots need."""
    from django.utils import timezone

    from disputes.services import dispute_open
    from orders.models import Message
    from orders.services import ItemIn, order_deliver, order_ingest, order_ship
    from refunds import services as rs

    now = timezone.now()

    def order(n: int, days_ago: float, *, deliver: bool = True, ship: bool = True) -> Any:
        placed = now - timedelta(days=days_ago)
        o = order_ingest(
            number=f"DEMO-{n:05d}",
            buyer_email="bea@demo.test",
            buyer_name="Bea Buyer",
            seller_email="sam@demo.test",
            seller_name="Sam's Ceramics",
            currency="USD",
            total=Decimal("59.90"),
            payment_method="card",
            payment_reference=f"ch_demo_{n}",
            card_brand="Visa",
            card_last4="4242",
            placed_at=placed,
            items=[
                ItemIn("MUG-1", "Stoneware travel mug", 2, Decimal("20.00")),
                ItemIn("TEA-9", "Oolong tea sampler", 1, Decimal("19.90")),
            ],
        )
        if ship:
            o = order_ship(
                order=o,
                carrier="SF Express",
                tracking_number=f"SF{n:09d}CN",
                shipped_at=placed + timedelta(hours=10),
                actor=None,
                now=now,
            )
        if deliver:
            o = order_deliver(order=o, delivered_at=placed + timedelta(days=2), actor=None, now=now)
        return o

    order(1, 0.2, ship=False, deliver=False)  # cancellable
    o2 = order(2, 3)  # refundable, for step 2
    Message.objects.create(order=o2, author=o2.buyer, body="Hi! One mug arrived with a chip.")
    o3 = order(3, 4)
    case = rs.refund_request(
        order=o3,
        buyer=o3.buyer,
        reason="damaged",
        amount="20.00",
        description="One of the two mugs arrived with a chipped rim.",
        return_item=False,
    )
    Message.objects.create(
        order=o3,
        author=o3.buyer,
        body="Photo attached, the rim is chipped.",
        case_id=case.public_id,
    )
    Message.objects.create(
        order=o3,
        author=o3.shop.owner,
        case_id=case.public_id,
        body="Sorry about that! Let me check with the warehouse.",
    )
    o4 = order(4, 5)
    c4 = rs.refund_request(
        order=o4,
        buyer=o4.buyer,
        reason="not_as_described",
        amount="59.90",
        description="The colour is nothing like the photo.",
    )
    rs.refund_reject(case=c4, actor=o4.shop.owner, reason="The colour matches the listing.")
    c4.refresh_from_db()
    dispute_open(
        case=c4,
        buyer=o4.buyer,
        statement="The listing shows a blue glaze; I got grey.",
        contact_name="Bea Buyer",
        contact_email="bea@demo.test",
        contact_phone="+49 30 1234567",
        desired_amount="59.90",
    )
    o5 = order(5, 6)
    c5 = rs.refund_request(
        order=o5, buyer=o5.buyer, reason="changed_mind", amount="59.90", return_item=True
    )
    c5 = rs.refund_accept(case=c5, actor=o5.shop.owner)
    rs.refund_ship_return(case=c5, actor=o5.buyer, carrier="DHL", tracking_number="JD0142")
    from orders.models import User

    User.objects.filter(email="bea@demo.test").update(time_zone="Europe/Berlin")
    User.objects.filter(email="sam@demo.test").update(time_zone="America/Los_Angeles")


def _targets() -> dict[str, Any]:
    """Find, in whatever data was seeded, a persona and an object for every page."""
    from disputes.models import Dispute
    from orders.models import Order, Shop
    from refunds.models import OPEN_STATES, RefundCase, State
    from refunds.selectors import refund_filing_options

    dispute = Dispute.objects.select_related("case__order__buyer", "case__order__shop").first()
    case = (
        RefundCase.objects.filter(state=State.REQUESTED).select_related("order__buyer").first()
        or RefundCase.objects.select_related("order__buyer").first()
    )
    any_order = Order.objects.select_related("buyer").first()
    assert any_order is not None, "the seed made no orders"
    buyer = case.order.buyer if case else any_order.buyer
    shop = (
        Shop.objects.filter(orders__refund_cases__state=State.REQUESTED).first()
        or Shop.objects.first()
    )
    from django.utils import timezone

    refundable = None
    for order in (
        Order.objects.filter(buyer=buyer)
        .exclude(status="cancelled")
        .exclude(refund_cases__state__in=OPEN_STATES)
    ):
        options = refund_filing_options(order=order, user=buyer, now=timezone.now())
        if any(o["state"] == "open" for o in options):
            refundable = order
            break
    from orders.models import User
    from refundportal.management.commands.seed_demo import STAFF_EMAIL, demo_staff_secret

    return {
        "buyer": buyer,
        "case": case,
        "dispute": dispute,
        "shop": shop,
        "refundable": refundable,
        "staff": User.objects.filter(email=STAFF_EMAIL).first(),
        "staff_secret": demo_staff_secret(),
    }


def _session_cookie(user: Any) -> str:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    assert session.session_key is not None
    return session.session_key


def _staff_session_cookie(browser: Any, base: str, user: Any, secret: str) -> str:
    """Sign the staff persona in through the pages: password, then the TOTP code."""
    from base64 import b32decode

    from django_otp.oath import totp

    from refundportal.management.commands.seed_demo import PASSWORD

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", user.email)
    page.fill("#id_password", PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/accounts/second-factor/**")
    page.fill("#id_code", f"{totp(b32decode(secret)):06d}")
    page.click("form.form button[type=submit]")
    page.wait_for_load_state()
    [key] = [c["value"] for c in context.cookies() if c["name"] == "sessionid"]
    context.close()
    return key


def _serve() -> tuple[Any, str]:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), Quiet, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(WSGIHandler()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # playwright's sync API runs a loop
    with tempfile.TemporaryDirectory(prefix="screens-") as tmpdir:
        _setup_django(Path(tmpdir))
        _seed()
        t = _targets()
        server, base = _serve()
        from django.urls import reverse

        pages: list[tuple[str, Any, str]] = [
            ("home", None, reverse("home")),
            ("my-orders", t["buyer"], reverse("order-list")),
            ("seller-dashboard", t["shop"].owner, reverse("seller-dashboard")),
            ("reputation", None, reverse("seller-public", args=[t["shop"].slug])),
        ]
        if t["refundable"] is not None:
            pages.append(
                (
                    "refund-step-2",
                    t["buyer"],
                    reverse("refund-start", args=[t["refundable"].number]),
                )
            )
        if t["case"] is not None:
            pages.append(
                (
                    "case-buyer",
                    t["case"].order.buyer,
                    reverse("case-detail", args=[t["case"].public_id]),
                )
            )
            pages.append(
                (
                    "case-seller",
                    t["case"].order.shop.owner,
                    reverse("case-detail", args=[t["case"].public_id]),
                )
            )
        if t["dispute"] is not None:
            pages.append(
                (
                    "dispute",
                    t["dispute"].case.order.buyer,
                    reverse("dispute-detail", args=[t["dispute"].public_id]),
                )
            )
        if t["staff"] is not None and t["staff_secret"]:
            pages.append(("staff-desk", t["staff"], reverse("admin:disputes_dispute_changelist")))
        cookies: dict[int, str] = {}
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            if t["staff"] is not None and t["staff_secret"]:
                # One sign-in: a TOTP code is accepted once, so every staff page shares it.
                cookies[t["staff"].pk] = _staff_session_cookie(
                    browser, base, t["staff"], t["staff_secret"]
                )
            for width_name, (width, height) in WIDTHS.items():
                for name, user, path in pages:
                    context = browser.new_context(viewport={"width": width, "height": height})
                    if user is not None:
                        key = cookies.setdefault(user.pk, _session_cookie(user))
                        context.add_cookies([{"name": "sessionid", "value": key, "url": base}])
                    page = context.new_page()
                    response = page.goto(base + path)
                    status = response.status if response else "?"
                    for culprit in page.evaluate(OVERFLOW_JS):
                        print(f"  ! wider than the {width} px viewport: {culprit}")
                    target = out / f"{name}-{width_name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
                    print(f"{status} {path} -> {shown}")
                    context.close()
            browser.close()
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
