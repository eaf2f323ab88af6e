"""Helpers of the notification tests: record events, run the dispatcher, read the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives

from notifications import services
from notifications.tasks import notifications_dispatch
from orders.events import event_record
from orders.models import Order

OPS = "ops@refundportal.test"  # settings.STAFF_ALERT_EMAILS under the test settings


@pytest.fixture(autouse=True)
def _fresh_mail_connection() -> Iterator[None]:
    # The sender keeps one connection per thread; each test starts with none.
    services._drop_connection()
    yield
    services._drop_connection()


def dispatch() -> list[EmailMultiAlternatives]:
    """Run the dispatcher as the worker would (tasks are eager here); the outbox after it."""
    notifications_dispatch()
    return list(mail.outbox)


def mails_to(address: str) -> list[EmailMultiAlternatives]:
    return [m for m in mail.outbox if address in m.to]


def the_mail_to(address: str) -> EmailMultiAlternatives:
    found = mails_to(address)
    assert len(found) == 1, f"{len(found)} emails to {address}: {[m.subject for m in found]}"
    return found[0]


def html_of(message: EmailMultiAlternatives) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(content)


def record(
    order: Order, kind: str, *, notify: tuple[str, ...], at: datetime | None = None, **payload: Any
) -> Any:
    """An event as a domain service writes it (same helper, same payload shape)."""
    payload = {
        k: v
        for k, v in payload.items()
        if k not in {"order_number", "currency", "shop", "payment_method_label"}
    }
    case_id = payload.pop("case_id", None)
    dispute_id = payload.pop("dispute_id", None)
    return event_record(
        order=order,
        kind=kind,
        actor=None,
        notify=notify,
        case_id=case_id,
        dispute_id=dispute_id,
        at=at,
        **payload,
    )
