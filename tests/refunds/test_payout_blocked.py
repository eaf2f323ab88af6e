"""A refund that would exceed what the order can still refund is held for staff, once."""

from __future__ import annotations

from decimal import Decimal

import time_machine
from django.db import transaction

from orders.models import Event
from orders.services import order_lock
from payouts.models import Payout
from payouts.services import payout_create
from refunds import services
from refunds.models import State
from refunds.sweeps import refund_sweeps_run
from tests.orders.factories import OrderFactory, delivered
from tests.refunds.factories import SECOND, file_refund, reload


def test_an_over_cap_payout_is_held_and_left_alone_by_the_redispatch(order, buyer, seller):
    # given a full-amount request, and then another payout that uses part of the order
    delivered(order)
    held = file_refund(order, reason="damaged", amount="59.90")
    with transaction.atomic():
        payout_create(
            order=order_lock(order),
            amount=Decimal("10.00"),
            purpose="goodwill",
            subject_id=None,
            idempotency_key=f"goodwill:{order.number}",
            actor=None,
        )
    other = delivered(OrderFactory(buyer=buyer, shop=seller.shops.get()))
    payable = file_refund(other, reason="damaged", amount="20.00")

    # when the seller stays silent past respond_by and the sweep auto-accepts both
    with time_machine.travel(max(held.respond_by, payable.respond_by) + SECOND, tick=False):
        refund_sweeps_run(now=max(held.respond_by, payable.respond_by) + SECOND)

    # then the over-cap case is approved but held, with one event for staff and no payout
    held = reload(held)
    assert held.state == State.REFUND_PENDING
    assert held.payout_id is None and held.payout_blocked_at is not None
    assert Event.objects.filter(case_id=held.public_id, kind="refund.payout_blocked").count() == 1
    assert not Payout.objects.filter(subject_id=held.public_id).exists()
    # and the periodic re-dispatch no longer picks it up (nor the one that was paid)
    assert services.refund_cases_awaiting_payout() == []
    assert reload(payable).payout_id is not None


def test_an_approved_case_without_a_payout_is_picked_up_by_the_redispatch(order):
    # given a case the sweep approved while its payout follow-up was lost (broker down)
    delivered(order)
    case = file_refund(order, reason="damaged", amount="20.00")
    from refunds.models import RefundCase

    RefundCase.objects.filter(pk=case.pk).update(
        state=State.REFUND_PENDING, approved_amount=Decimal("20.00"), approved_at=case.respond_by
    )

    # then the re-dispatch lists it, and starting it creates exactly one payout
    assert services.refund_cases_awaiting_payout() == [case.pk]
    assert services.refund_start_payouts(case_ids=[case.pk]) == 1
    assert services.refund_start_payouts(case_ids=[case.pk]) == 0
    assert services.refund_cases_awaiting_payout() == []
