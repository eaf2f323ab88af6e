"""Refund cases through the services (as users make them), and real files for evidence tests."""

from __future__ import annotations

import io
import os
import struct
import zlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from kernel import windows
from orders.models import Order
from refunds import services
from refunds.models import RefundCase, State
from tests.orders.factories import OrderFactory

CHINA = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)


def cn(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    """An instant written in the marketplace time zone."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=CHINA)


def file_refund(
    order: Order,
    *,
    reason: str = "changed_mind",
    amount: Any = "59.90",
    return_item: bool = False,
    now: datetime | None = None,
    **kwargs: Any,
) -> RefundCase:
    """A request filed by the order's buyer through the service."""
    return services.refund_request(
        order=order,
        buyer=order.buyer,
        reason=reason,
        amount=amount,
        return_item=return_item,
        now=now or timezone.now(),
        **kwargs,
    )


def reload(case: RefundCase) -> RefundCase:
    return RefundCase.objects.select_related("order", "order__shop").get(pk=case.pk)


class RefundCaseFactory(factory.django.DjangoModelFactory):
    """A case written straight to the table (for query budgets over many rows).

    Tests of behaviour file cases through `file_refund`; this one only fills lists.
    """

    class Meta:
        model = RefundCase

    order = factory.SubFactory(OrderFactory)
    reason = "changed_mind"
    amount = Decimal("10.00")
    currency = factory.LazyAttribute(lambda o: o.order.currency)
    state = State.REQUESTED
    respond_by = factory.LazyFunction(lambda: windows.respond_by(filed_at=timezone.now()))


# --- files --------------------------------------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, fmt)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (8, 6)) -> bytes:
    return image_bytes("PNG", size)


def noisy_png_bytes(size: tuple[int, int] = (200, 200)) -> bytes:
    """A PNG that does not compress (random pixels): its size is about 3 bytes a pixel."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    return image_bytes("JPEG")


def webp_bytes() -> bytes:
    return image_bytes("WEBP")


def pillow_pdf_bytes() -> bytes:
    return image_bytes("PDF")


def minimal_pdf_bytes() -> bytes:
    """A one-page PDF written by hand (what a receipt printer might produce, minus the text)."""
    return pdf_bytes()


def pdf_bytes(catalog: bytes = b"", *extra: bytes, page: bytes = b"") -> bytes:
    """A one-page PDF with a correct cross-reference table; `catalog` and `page` are added to
    the catalog's and the page's dictionaries, `extra` are objects 4, 5, … ."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] " + page + b" >>",
        *extra,
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_claiming(width: int, height: int) -> bytes:
    """A small, valid-looking PNG whose header claims `width` x `height` pixels.

    Decoding it would allocate the claimed size (a decompression bomb); the header alone says
    how big it is, which is all the upload check reads.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def upload(
    name: str, content: bytes, content_type: str = "application/octet-stream"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)
