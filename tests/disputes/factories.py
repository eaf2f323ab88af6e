"""Disputes built through the services, so every row is one the product could have made."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from disputes import services
from disputes.models import Dispute
from orders.models import Order, User
from refunds.models import RefundCase
from refunds.services import refund_reject, refund_request
from tests.orders.factories import OrderFactory


def rejected_case(
    *,
    buyer: User,
    seller: User,
    closed_at: datetime | None = None,
    order: Order | None = None,
    amount: str = "59.90",
) -> RefundCase:
    """A change-of-mind request filed two hours before `closed_at` and rejected at it."""
    closed_at = closed_at or timezone.now()
    if order is None:
        order = OrderFactory(
            buyer=buyer, shop=seller.shops.get(), placed_at=closed_at - timedelta(days=1)
        )
    case = refund_request(
        order=order,
        buyer=buyer,
        reason="changed_mind",
        amount=amount,
        description="Not what the listing showed.",
        now=closed_at - timedelta(hours=2),
    )
    return refund_reject(case=case, actor=seller, reason="The item was used.", now=closed_at)


def open_dispute(
    *,
    case: RefundCase,
    now: datetime | None = None,
    desired_amount: Any = "59.90",
    **fields: Any,
) -> Dispute:
    buyer = case.order.buyer
    values: dict[str, Any] = {
        "statement": "The mug arrived cracked; the seller refused to look at the photos.",
        "contact_name": buyer.name or "Buyer",
        "contact_email": buyer.email,
        "contact_phone": "+49 30 1234567",
        **fields,
    }
    return services.dispute_open(
        case=case, buyer=buyer, desired_amount=desired_amount, now=now or timezone.now(), **values
    )


def dispute_for(
    *,
    buyer: User,
    seller: User,
    opened_at: datetime | None = None,
    desired_amount: Any = "59.90",
    order: Order | None = None,
) -> Dispute:
    """An open dispute on a freshly rejected case, opened an hour after the rejection."""
    opened_at = opened_at or timezone.now()
    case = rejected_case(
        buyer=buyer, seller=seller, closed_at=opened_at - timedelta(hours=1), order=order
    )
    return open_dispute(case=case, now=opened_at, desired_amount=desired_amount)


def with_statement(dispute: Dispute, *, now: datetime | None = None) -> Dispute:
    seller = dispute.case.order.shop.owner
    return services.dispute_add_statement(
        dispute=dispute,
        seller=seller,
        body="The buyer used the mug for a week.",
        now=now or timezone.now(),
    )


def decided(
    dispute: Dispute,
    *,
    staff: User,
    outcome: str = "buyer",
    amount: Decimal | str | None = None,
    now: datetime | None = None,
) -> Dispute:
    if dispute.seller_statement_at is None:
        dispute = with_statement(dispute, now=now)
    return services.dispute_decide(
        dispute=dispute,
        staff=staff,
        outcome=outcome,
        amount=amount,
        rationale="Photos show the crack on arrival.",
        now=now or timezone.now(),
    )


def png_upload(name: str = "photo.png", size: tuple[int, int] = (8, 8)) -> Any:
    """A real (tiny) PNG image, as a browser would upload it."""
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def pdf_upload(name: str = "receipt.pdf") -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.refunds.factories import minimal_pdf_bytes

    return SimpleUploadedFile(name, minimal_pdf_bytes(), content_type="application/pdf")


def open_body(case: RefundCase, **extra: Any) -> dict[str, Any]:
    """A well-formed body for `POST /api/v1/disputes/` on this case; tests override the fields
    they are about."""
    return {
        "refund": str(case.public_id),
        "statement": "The mug arrived cracked.",
        "contact_name": "Bea Buyer",
        "contact_email": "bea@example.com",
        "contact_phone": "+49 30 1234567",
        "desired_amount": "59.90",
        **extra,
    }
