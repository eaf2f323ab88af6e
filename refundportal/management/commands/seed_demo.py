"""`manage.py seed_demo`: a demo marketplace with something in every state (docs/architecture.md,
Operations).

Everything is made through the services, at explicit instants in the past (`now=`), so every
row is one the product could have made and every deadline is where the windows put it; one
pass of the deadline sweeps at the end lets the system catch up (a return that was never
shipped expires, overdue disputes are flagged). Celery runs eagerly while seeding, so payouts
settle on the fake gateway before the command returns.

Idempotent: when the demo buyer exists it only prints the logins. Runs on SQLite and PostgreSQL.

The demo staff account signs in to pages and the admin with a second factor (docs/architecture.md,
Accounts and security): its TOTP device is made here and its secret printed with the logins, to
add to an authenticator app (scripts/screenshots.py computes the codes from it).
"""

from __future__ import annotations

import io
import logging
from base64 import b32encode
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from disputes import services as disputes
from disputes.models import Dispute
from kernel import windows
from orders.models import Order, Shop, User
from orders.services import (
    ItemIn,
    message_post_on_order,
    order_deliver,
    order_ingest,
    order_ship,
    shop_set_return_policy,
)
from payouts.chargebacks import chargeback_closed, chargeback_opened
from payouts.services import order_cancel_by_buyer, order_cancel_out_of_stock
from refundportal.deadlines import enforce_all
from refunds import services as refunds
from refunds.models import RefundCase

PASSWORD = "demo-pass-2026"  # noqa: S105 - a published demo login
MARKER_EMAIL = "buyer@demo.test"
STAFF_EMAIL = "staff@demo.test"

# email, name, time zone, shop (slug, name) or None, extra flags
PEOPLE: list[tuple[str, str, str, tuple[str, str] | None, dict[str, Any]]] = [
    ("buyer@demo.test", "Bea Buyer", "Europe/Berlin", None, {}),
    ("buyer2@demo.test", "Ben Buyer", "America/New_York", None, {}),
    ("seller@demo.test", "Sam Seller", "America/Los_Angeles", ("sams-mugs", "Sam's Mugs"), {}),
    ("seller2@demo.test", "Sara Seller", "UTC", ("saras-teas", "Sara's Teas"), {}),
    (
        "staff@demo.test",
        "Stan Staff",
        "Asia/Shanghai",
        None,
        {"is_staff": True, "is_superuser": True},
    ),
]
LOGINS = [
    ("buyer", "buyer@demo.test"),
    ("buyer (second)", "buyer2@demo.test"),
    ("seller", "seller@demo.test"),
    ("seller (second)", "seller2@demo.test"),
    ("staff (admin desk)", "staff@demo.test"),
]
ITEMS = [
    ItemIn("MUG-1", "Travel mug", 2, Decimal("20.00")),
    ItemIn("TEA-1", "Tea sampler", 1, Decimal("19.90")),
]
TOTAL = Decimal("59.90")
PAYMENTS = [
    {"payment_method": "card", "card_brand": "Visa", "card_last4": "4242"},
    {"payment_method": "paypal"},
    {"payment_method": "card", "card_brand": "Mastercard", "card_last4": "4444"},
    {"payment_method": "wallet"},
]


def _png() -> SimpleUploadedFile:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (236, 232, 224))
    draw = ImageDraw.Draw(image)
    draw.line((40, 40, 280, 200), fill=(150, 20, 20), width=6)  # the crack
    draw.rectangle((20, 20, 300, 220), outline=(60, 60, 60), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return SimpleUploadedFile("cracked-mug.png", buffer.getvalue(), content_type="image/png")


def _pdf() -> SimpleUploadedFile:
    from PIL import Image, ImageDraw

    # A one-page scan of a receipt: an uploaded PDF must open in a parser
    # (docs/rules.md, Evidence files).
    image = Image.new("RGB", (240, 320), (255, 255, 255))
    ImageDraw.Draw(image).text((20, 20), "Receipt: 1 x Travel mug", fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PDF")
    body = buffer.getvalue()
    return SimpleUploadedFile("receipt.pdf", body, content_type="application/pdf")


class Seeder:
    """The demo's timeline, relative to `now` (whole seconds, so the demo reads cleanly)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.numbers = iter(range(1001, 10_000))
        self.users: dict[str, User] = {}
        self.counts: dict[str, int] = {}

    def ago(self, **delta: float) -> datetime:
        return self.now - timedelta(**delta)

    # --- people and orders ----------------------------------------------------------------

    def people(self) -> None:
        for email, name, tz, shop, flags in PEOPLE:
            user = User.objects.create_user(
                email=email, password=PASSWORD, name=name, time_zone=tz, **flags
            )
            if shop is not None:
                Shop.objects.create(owner=user, slug=shop[0], name=shop[1])
            self.users[email] = user
        # A shop with a longer change-of-mind policy than the default.
        shop_set_return_policy(
            shop=self.seller2.shops.get(), return_policy=timedelta(days=30), actor=self.seller2
        )

    @property
    def buyer(self) -> User:
        return self.users["buyer@demo.test"]

    @property
    def buyer2(self) -> User:
        return self.users["buyer2@demo.test"]

    @property
    def seller(self) -> User:
        return self.users["seller@demo.test"]

    @property
    def seller2(self) -> User:
        return self.users["seller2@demo.test"]

    @property
    def staff(self) -> User:
        return self.users["staff@demo.test"]

    def order(
        self,
        *,
        placed_at: datetime,
        buyer: User | None = None,
        seller: User | None = None,
        reference: str | None = None,
    ) -> Order:
        n = next(self.numbers)
        buyer, seller = buyer or self.buyer, seller or self.seller
        payment = {"card_brand": "", "card_last4": "", **PAYMENTS[n % len(PAYMENTS)]}
        return order_ingest(
            number=f"DEMO-{n}",
            buyer_email=buyer.email,
            buyer_name=buyer.name,
            seller_email=seller.email,
            seller_name=seller.name,
            currency="USD",
            total=TOTAL,
            payment_reference=reference or f"ch_demo_{n}",
            placed_at=placed_at,
            items=ITEMS,
            deliver_by=placed_at + timedelta(days=7),
            actor=self.staff,
            **payment,
        )

    def shipped(self, order: Order, at: datetime) -> Order:
        return order_ship(
            order=order,
            carrier="SF Express",
            tracking_number=f"SF{order.pk:09d}CN",
            shipped_at=at,
            actor=None,
            now=at,
        )

    def delivered_order(self, *, delivered_at: datetime, **kw: Any) -> Order:
        order = self.order(placed_at=delivered_at - timedelta(days=3), **kw)
        self.shipped(order, delivered_at - timedelta(days=2))
        return order_deliver(order=order, delivered_at=delivered_at, actor=None, now=delivered_at)

    def orders(self) -> None:
        self.order(placed_at=self.ago(hours=2))  # paid
        placed = self.ago(days=3)
        self.shipped(self.order(placed_at=placed, buyer=self.buyer2), placed + timedelta(days=1))
        self.delivered_order(delivered_at=self.ago(days=1), seller=self.seller2)
        cancelled = self.order(placed_at=self.ago(hours=5))
        order_cancel_by_buyer(order=cancelled, actor=self.buyer, now=self.ago(hours=4))
        out_of_stock = self.order(placed_at=self.ago(hours=9), buyer=self.buyer2)
        order_cancel_out_of_stock(order=out_of_stock, actor=self.seller, now=self.ago(hours=8))

    # --- refund cases ---------------------------------------------------------------------

    def request(
        self,
        *,
        filed_at: datetime,
        return_item: bool = False,
        amount: str = "59.90",
        reason: str = "changed_mind",
        buyer: User | None = None,
        seller: User | None = None,
        reference: str | None = None,
    ) -> RefundCase:
        order = self.delivered_order(
            delivered_at=filed_at - timedelta(days=1),
            buyer=buyer,
            seller=seller,
            reference=reference,
        )
        message_post_on_order(
            order=order,
            author=order.buyer,
            body="Hello, the mug is not what the photos showed. Can you help?",
        )
        message_post_on_order(
            order=order,
            author=order.shop.owner,
            body="Sorry to hear that. Please file a refund request.",
        )
        return refunds.refund_request(
            order=order,
            buyer=order.buyer,
            reason=reason,
            amount=amount,
            return_item=return_item,
            description="The glaze is chipped and the lid does not close.",
            now=filed_at,
        )

    def seller_of(self, case: RefundCase) -> User:
        return case.order.shop.owner

    def cases(self) -> None:
        # requested: the seller has until respond_by
        self.request(filed_at=self.ago(hours=1))
        self.request(
            filed_at=self.ago(hours=30),
            buyer=self.buyer2,
            seller=self.seller2,
            reason="damaged",
            amount="20.00",
        )
        # offer_made
        case = self.request(filed_at=self.ago(hours=6))
        refunds.refund_offer(case=case, actor=self.seller, amount="25.00", now=self.ago(hours=2))
        # awaiting_return (RMA issued)
        case = self.request(filed_at=self.ago(hours=5), return_item=True, seller=self.seller2)
        refunds.refund_accept(case=case, actor=self.seller2, now=self.ago(hours=3))
        # return_shipped
        case = self.request(filed_at=self.ago(days=3), return_item=True)
        refunds.refund_accept(case=case, actor=self.seller, now=self.ago(days=3, hours=-2))
        refunds.refund_ship_return(
            case=case,
            actor=self.buyer,
            carrier="DHL",
            tracking_number="JD014600003456789",
            now=self.ago(days=1),
        )
        # refund_pending: this payment method declines refunds, the payout waits for a retry
        case = self.request(filed_at=self.ago(hours=4), reference="fail-demo-declines")
        refunds.refund_accept(case=case, actor=self.seller, now=self.ago(hours=2))
        # refunded (the payout settles when the seed commits)
        case = self.request(filed_at=self.ago(days=2), buyer=self.buyer2)
        refunds.refund_accept(case=case, actor=self.seller, now=self.ago(days=2, hours=-3))
        # closed: rejected (still disputable)
        case = self.request(filed_at=self.ago(hours=8))
        refunds.refund_reject(
            case=case,
            actor=self.seller,
            now=self.ago(hours=3),
            reason="The item shows signs of use.",
        )
        # closed: offer_declined
        case = self.request(filed_at=self.ago(hours=9), seller=self.seller2)
        refunds.refund_offer(case=case, actor=self.seller2, amount="10.00", now=self.ago(hours=8))
        refunds.refund_decline_offer(case=case, actor=self.buyer, now=self.ago(hours=2))
        # closed: withdrawn
        case = self.request(filed_at=self.ago(hours=3), buyer=self.buyer2)
        refunds.refund_withdraw(case=case, actor=self.buyer2, now=self.ago(hours=1))
        # closed: expired (the return was never shipped; the sweep at the end closes it)
        case = self.request(filed_at=self.ago(days=20), return_item=True)
        refunds.refund_accept(case=case, actor=self.seller, now=self.ago(days=20, hours=-1))

    # --- disputes -------------------------------------------------------------------------

    def dispute(
        self,
        *,
        opened_at: datetime,
        buyer: User | None = None,
        seller: User | None = None,
        desired: str = "59.90",
    ) -> Dispute:
        case = self.request(filed_at=opened_at - timedelta(hours=6), buyer=buyer, seller=seller)
        refunds.refund_reject(
            case=case,
            actor=self.seller_of(case),
            reason="The buyer damaged it.",
            now=opened_at - timedelta(hours=2),
        )
        buyer = case.order.buyer
        return disputes.dispute_open(
            case=case,
            buyer=buyer,
            desired_amount=desired,
            now=opened_at,
            statement="The mug arrived with a crack across the glaze; the seller rejected my "
            "request without looking at the photos.",
            contact_name=buyer.name,
            contact_email=buyer.email,
            contact_phone="+49 30 1234567",
        )

    def statement(self, dispute: Dispute, at: datetime) -> Dispute:
        return disputes.dispute_add_statement(
            dispute=dispute,
            seller=dispute.case.order.shop.owner,
            now=at,
            body="The mug left our warehouse intact; the photos show a different glaze.",
        )

    def _opened_for(self, wanted: str) -> datetime:
        """An opening instant whose business-day deadlines fall where the demo needs them:
        past the target but not the hard deadline, or past both (holidays shift them)."""
        for days in range(1, 40):
            opened = self.ago(days=days)
            target = windows.decision_target(opened_at=opened)
            due = windows.decision_due(opened_at=opened)
            if wanted == "target" and target < self.now < due - timedelta(hours=2):
                return opened
            if wanted == "due" and due < self.now - timedelta(hours=2):
                return opened
        return self.ago(days=40)

    def disputes(self) -> None:
        # open: the seller still has time for a statement
        dispute = self.dispute(opened_at=self.ago(hours=2))
        disputes.dispute_post_message(
            dispute=dispute,
            author=self.buyer,
            body="Photos attached to the refund request.",
            now=self.ago(hours=1),
        )
        # under review
        opened = self.ago(hours=20)
        dispute = self.statement(
            self.dispute(opened_at=opened, seller=self.seller2), opened + timedelta(hours=2)
        )
        disputes.dispute_start_review(dispute=dispute, staff=self.staff, now=self.ago(hours=1))
        # information requested from the buyer, with evidence on file
        opened = self.ago(hours=30)
        dispute = self.statement(
            self.dispute(opened_at=opened, buyer=self.buyer2), opened + timedelta(hours=3)
        )
        disputes.dispute_add_evidence(
            dispute=dispute, actor=self.buyer2, upload=_png(), kind="photo"
        )
        disputes.dispute_add_evidence(
            dispute=dispute, actor=self.buyer2, upload=_pdf(), kind="receipt"
        )
        disputes.dispute_request_info(
            dispute=dispute,
            staff=self.staff,
            party="buyer",
            question="Please send a photo of the parcel's label.",
            now=self.ago(hours=2),
        )
        # resolved for the buyer (paid when the seed commits) and for the seller
        opened = self.ago(days=3)
        dispute = self.statement(
            self.dispute(opened_at=opened, desired="45.00"), opened + timedelta(hours=5)
        )
        disputes.dispute_decide(
            dispute=dispute,
            staff=self.staff,
            outcome="buyer",
            amount="40.00",
            now=self.ago(days=1),
            rationale="The photos show a crack consistent with transit.",
        )
        opened = self.ago(days=4)
        dispute = self.statement(
            self.dispute(opened_at=opened, seller=self.seller2), opened + timedelta(hours=4)
        )
        disputes.dispute_decide(
            dispute=dispute,
            staff=self.staff,
            outcome="seller",
            now=self.ago(days=2),
            rationale="The seller's photos before dispatch show no damage.",
        )
        # withdrawn
        dispute = self.dispute(opened_at=self.ago(days=2), buyer=self.buyer2)
        disputes.dispute_withdraw(dispute=dispute, buyer=self.buyer2, now=self.ago(days=1))
        # closed by a chargeback the marketplace lost (docs/rules.md, Chargebacks)
        dispute = self.dispute(opened_at=self.ago(days=3), seller=self.seller2)
        order = dispute.case.order
        stripe = {"id": f"dp_demo_{order.number}", "amount": 2000, "currency": "usd"}
        stripe |= {"charge": order.payment_reference, "reason": "fraudulent"}
        chargeback_opened(dispute=stripe, at=self.ago(days=2))
        chargeback_closed(dispute={**stripe, "status": "lost"}, at=self.ago(days=1))
        # overdue: past the hard deadline, one untouched, one stuck in review
        self.dispute(opened_at=self._opened_for("due"), seller=self.seller2)
        opened = self._opened_for("due") - timedelta(days=1)
        dispute = self.statement(
            self.dispute(opened_at=opened, buyer=self.buyer2), opened + timedelta(hours=6)
        )
        disputes.dispute_start_review(
            dispute=dispute, staff=self.staff, now=opened + timedelta(days=1)
        )
        # past the target, not yet the hard deadline
        opened = self._opened_for("target")
        self.statement(self.dispute(opened_at=opened), opened + timedelta(hours=1))

    def run(self) -> dict[str, int]:
        self.people()
        self.orders()
        self.cases()
        self.disputes()
        # The system catches up to now, as the beat would have: one pass of every sweep.
        return enforce_all(now=self.now)


class Command(BaseCommand):
    help = "Create demo accounts, shops, orders, refund cases and disputes in every state."

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(email=MARKER_EMAIL).exists():
            self.stdout.write("Demo data is already there; nothing to do.")
            self._print_logins()
            return
        from refundportal.celery import app

        conf = app.conf
        saved = conf.task_always_eager, conf.task_eager_propagates
        trace = logging.getLogger("celery.app.trace")
        saved_level = trace.level
        # Payouts and follow-ups run here and now (after the commit), so the demo shows them
        # settled, with no broker or worker needed; one log line per eager task is noise here.
        conf.task_always_eager, conf.task_eager_propagates = True, True
        trace.setLevel(logging.WARNING)
        try:
            with transaction.atomic():
                moved = Seeder(timezone.now().replace(microsecond=0)).run()
        finally:
            conf.task_always_eager, conf.task_eager_propagates = saved
            trace.setLevel(saved_level)
        caught_up = ", ".join(f"{k} {v}" for k, v in moved.items() if v) or "nothing"
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data created: {Order.objects.count()} orders, "
                f"{RefundCase.objects.count()} refund cases, {Dispute.objects.count()} disputes "
                f"(the deadline sweep caught up: {caught_up})."
            )
        )
        self._print_logins()

    def _print_logins(self) -> None:
        site = settings.SITE_URL.rstrip("/")
        self.stdout.write(f"\nOpen {site}/ (staff desk: {site}/admin/)\n")
        self.stdout.write(f"Every demo login uses the password: {PASSWORD}")
        for role, email in LOGINS:
            self.stdout.write(f"  {role:<20} {email}")
        secret = demo_staff_secret()
        if secret:
            self.stdout.write(
                f"The staff login also asks for a code: add this TOTP secret to an "
                f"authenticator app: {secret}"
            )


def demo_staff_secret() -> str | None:
    """The demo staff's TOTP secret (base32), its device made on first use; None without the
    demo staff account. A demo seeded before staff had a second factor gets its device here."""
    staff = User.objects.filter(email=STAFF_EMAIL).first()
    if staff is None:
        return None
    device = TOTPDevice.objects.devices_for_user(staff, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=staff, name="Demo authenticator", confirmed=True)
    return b32encode(device.bin_key).decode()
