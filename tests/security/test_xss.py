"""Script in every text a user or the marketplace writes is shown as text, never run.

Each field gets its own tagged payload (`<field>:<script>alert(1)</script>` and
`<field>:"><img src=x onerror=alert(1)>`): names, shop and item titles from the marketplace,
the case description, messages, the reject reason, the return's carrier, a file name, the
dispute's statement and contact name, the seller's statement, staff's question and rationale.
Then every page of the URL conf (walked, not listed) is read as buyer, seller and staff, plus
the admin's views of them, and every email's HTML body: the raw markup never appears, and each
field is shown escaped somewhere, so a field that is not rendered cannot pass unnoticed.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from disputes import services as dispute_services
from notifications.models import Notification
from notifications.tasks import notifications_dispatch
from orders import services as order_services
from refunds import services as refund_services
from refunds.evidence import evidence_add
from tests.orders.factories import OrderFactory, ShopFactory, UserFactory
from tests.refunds.factories import file_refund, png_bytes

from .urlwalk import fill, page_routes

RAW = ("<script>alert(1)", "<img src=x onerror")


def payload(field: str) -> str:
    return f'{field}:<script>alert(1)</script> {field}:"><img src=x onerror=alert(1)>'


def shown_escaped(field: str, html: str) -> bool:
    return f"{field}:&lt;script&gt;" in html or f"{field}:&quot;&gt;&lt;img" in html


FIELDS_ON_PAGES = [
    "buyer",
    "seller",
    "shop",
    "title",
    "description",
    "message",
    "reject",
    "carrier",
    "statement",
    "contact",
    "seller_statement",
    "question",
    "rationale",
    "file",
]
FIELDS_IN_EMAILS = [
    "shop",
    "message",
    "reject",
    "statement",
    "seller_statement",
    "question",
    "rationale",
]


@pytest.fixture
def hostile(staff) -> dict[str, Any]:
    now = timezone.now()
    buyer = UserFactory(email="xss.buyer@example.com", name=payload("buyer"))
    seller = UserFactory(email="xss.seller@example.com", name=payload("seller"))
    shop = ShopFactory(owner=seller, slug="xss-shop", name=payload("shop"))
    lines = [("SKU-X", payload("title"), 1, Decimal("59.90"))]

    # a rejected, disputed, decided case
    order = OrderFactory(buyer=buyer, shop=shop, items=lines, placed_at=now - timedelta(days=1))
    order_services.message_post_on_order(order=order, author=buyer, body=payload("message"))
    case = file_refund(order, description=payload("description"), now=now - timedelta(hours=3))
    evidence = evidence_add(
        case=case,
        actor=buyer,
        upload=SimpleUploadedFile(
            'file:"><img src=x onerror=alert(1)>.png', png_bytes(), "image/png"
        ),
    )
    case = refund_services.refund_reject(
        case=case, actor=seller, reason=payload("reject"), now=now - timedelta(hours=2)
    )
    dispute = dispute_services.dispute_open(
        case=case,
        buyer=buyer,
        statement=payload("statement"),
        contact_name=payload("contact"),
        contact_email="xss.buyer@example.com",
        desired_amount="59.90",
        now=now - timedelta(hours=1),
    )
    dispute_services.dispute_add_statement(
        dispute=dispute, seller=seller, body=payload("seller_statement")
    )
    dispute_services.dispute_request_info(
        dispute=dispute, staff=staff, party="buyer", question=payload("question")
    )
    dispute_services.dispute_post_message(dispute=dispute, author=buyer, body=payload("answer"))
    dispute_services.dispute_decide(
        dispute=dispute, staff=staff, outcome="seller", rationale=payload("rationale")
    )

    # a case with a return on the way, on a shipped order
    shipped = OrderFactory(buyer=buyer, shop=shop, items=lines, placed_at=now - timedelta(days=2))
    order_services.order_ship(
        order=shipped,
        carrier=payload("carrier")[:80],
        tracking_number="SF1",
        shipped_at=None,
        actor=None,
    )
    returning = file_refund(shipped, return_item=True)
    returning = refund_services.refund_accept(case=returning, actor=seller)
    refund_services.refund_ship_return(
        case=returning, actor=buyer, carrier=payload("carrier")[:80], tracking_number="SF2"
    )

    # every notice of all that, sent (eager): the emails and the portal's notices
    mail.outbox.clear()
    assert notifications_dispatch.apply().successful()
    return {
        "buyer": buyer,
        "seller": seller,
        "staff": staff,
        "order": order,
        "case": case,
        "shipped": shipped,
        "returning": returning,
        "dispute": dispute,
        "shop": shop,
        "evidence": evidence,
    }


def assert_no_raw_markup(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{where} renders user markup unescaped: {raw!r}"


def test_every_page_shows_user_text_escaped(hostile):
    seen: dict[str, str] = {}
    for who in ("buyer", "seller", "staff"):
        client = Client()
        client.force_login(hostile[who])
        notice = Notification.objects.filter(recipient=hostile[who]).first()
        for case_key in ("case", "returning"):
            values = {
                "number": hostile[case_key].order.number,
                "case_id": hostile[case_key].public_id,
                "dispute_id": hostile["dispute"].public_id,
                "evidence_id": hostile["evidence"].public_id,
                "slug": hostile["shop"].slug,
                "public_id": notice.public_id if notice else hostile["case"].public_id,
                "uidb64": "x",
                "token": "y",
            }
            for route in page_routes():
                url = fill(route, values)
                response = client.get(url)
                if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
                    continue
                html = response.content.decode()
                assert_no_raw_markup(html, f"{url} as {who}")
                seen[f"{url} as {who}"] = html
    assert len(seen) >= 10, sorted(seen)
    everything = "\n".join(seen.values())
    missing = [f for f in FIELDS_ON_PAGES if not shown_escaped(f, everything)]
    assert not missing, f"never shown on any page (so never checked): {missing}"


ADMIN_MODELS = [
    "refunds.refundcase",
    "disputes.dispute",
    "orders.order",
    "orders.event",
    "notifications.notification",
    "refunds.evidence",
]


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_the_admin_shows_user_text_escaped(hostile, model):
    client = Client()
    client.force_login(hostile["staff"])
    app_label, model_name = model.split(".")
    changelist = client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    assert changelist.status_code == 200
    assert_no_raw_markup(changelist.content.decode(), f"{model} changelist")
    from django.apps import apps

    for obj in apps.get_model(app_label, model_name).objects.all()[:5]:
        page = client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
        assert page.status_code == 200
        assert_no_raw_markup(page.content.decode(), f"{model} {obj.pk} in admin")


def test_every_email_shows_user_text_escaped(hostile):
    assert mail.outbox, "no email was sent"
    htmls = []
    for message in mail.outbox:
        alternatives = [content for content, mime in message.alternatives if mime == "text/html"]
        assert alternatives, f"{message.subject!r} has no HTML part"
        for html in alternatives:
            assert_no_raw_markup(html, f"the email {message.subject!r}")
            htmls.append(html)
        # a header is one line of plain text: nothing injected into it
        assert "\n" not in message.subject and "\r" not in message.subject
    everything = "\n".join(htmls)
    missing = [f for f in FIELDS_IN_EMAILS if not shown_escaped(f, everything)]
    assert not missing, f"never shown in any email (so never checked): {missing}"
