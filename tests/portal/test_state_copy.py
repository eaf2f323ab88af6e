"""The words for each case state and viewer live in templates: for every state of the case's
state machine and both parties, the case page's banner and the order card's next step say
something, and never the raw state."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from refunds.models import OPEN_STATES, ClosedReason, RefundCase, State
from tests.portal.conftest import client_for, delivered_order
from tests.refunds.factories import RefundCaseFactory

pytestmark = pytest.mark.django_db


def case_in(state: str, buyer, seller) -> RefundCase:  # type: ignore[no-untyped-def]
    """A case written straight into `state`, with the fields that state has."""
    now = timezone.now()
    soon = now + timedelta(days=1)
    fields: dict[str, object] = {
        State.OFFER_MADE: {"offer_amount": Decimal("5.00"), "offer_by": soon},
        State.AWAITING_RETURN: {"return_item": True, "rma_issued_at": now, "return_by": soon},
        State.RETURN_SHIPPED: {
            "return_item": True,
            "rma_issued_at": now,
            "return_carrier": "DHL",
            "return_tracking_number": "1Z",
            "return_shipped_at": now,
            "confirm_by": soon,
        },
        State.REFUND_PENDING: {"approved_amount": Decimal("10.00"), "approved_at": now},
        State.REFUNDED: {"approved_amount": Decimal("10.00"), "refunded_amount": Decimal("10.00")},
        State.CLOSED: {
            "closed_reason": ClosedReason.REJECTED,
            "closed_at": now,
            "dispute_by": soon,
        },
    }.get(state, {})
    return RefundCaseFactory(order=delivered_order(buyer, seller), state=state, **fields)


def texts(html: str, pattern: str) -> list[str]:
    return [re.sub(r"<[^>]+>|\s+", " ", t).strip() for t in re.findall(pattern, html, re.S)]


@pytest.mark.parametrize("state", State.values)
@pytest.mark.parametrize("role", ["buyer", "seller"])
def test_every_state_has_words_for_each_party(state, role, buyer, seller):
    case = case_in(state, buyer, seller)
    client = client_for(buyer if role == "buyer" else seller)

    page = client.get(f"/refunds/{case.public_id}/").content.decode()
    (banner,) = texts(page, r'<h2 id="next-h">(.*?)</h2>')
    raw = {"", state, State(state).label}  # nothing, or the state's own name
    assert banner not in raw

    tab = "?as=seller" if role == "seller" else ""
    steps = texts(client.get(f"/orders/{tab}").content.decode(), r"next-step__what\">(.*?)</span>")
    if state in OPEN_STATES:
        assert steps and not raw.intersection(steps)
