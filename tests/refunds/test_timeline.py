"""The case timeline's words (refunds/timeline.py): what buyer and seller read of each event."""

from __future__ import annotations

import re

from django.utils import timezone

from payouts.chargebacks import chargeback_closed, chargeback_opened
from refunds.models import RefundCase
from refunds.timeline import refund_timeline_entries
from tests.payouts.helpers import paid_order, pending_refund_case, stripe_dispute


def words(case: RefundCase) -> list[str]:
    return [entry.what for entry in refund_timeline_entries(case=case)]


def test_a_case_closed_by_a_lost_chargeback_says_so(buyer, seller, stripe_server):
    # given a case whose payout a chargeback held, then lost
    order = paid_order(buyer, seller)
    case = pending_refund_case(order)
    dispute = stripe_dispute(order)
    chargeback_opened(dispute=dispute, at=timezone.now())
    chargeback_closed(dispute={**dispute, "status": "lost"}, at=timezone.now())

    # then its timeline reads in words, not in event names
    lines = words(RefundCase.objects.get(pk=case.pk))
    assert "Closed: the bank decided the chargeback" in lines
    # (an event without words would read as its name, "refund: closed by chargeback")
    assert not any(re.match(r"[a-z_]+: ", line) for line in lines)
