"""Who may act is decided before what they sent is judged (403 before 400)."""

from __future__ import annotations

import pytest

from kernel.errors import NotAllowed
from refunds import services
from tests.orders.factories import delivered
from tests.refunds.factories import file_refund


@pytest.fixture
def case(order, buyer):
    delivered(order)
    return file_refund(order, reason="damaged", amount="20.00")


@pytest.mark.parametrize(
    ("action", "kwargs"),
    [
        (services.refund_offer, {"amount": "not money"}),
        (services.refund_reject, {"reason": ""}),
    ],
)
def test_buyer_calling_a_seller_action_with_a_bad_body_is_refused_as_not_theirs(
    case, buyer, action, kwargs
):
    # given a requested case, when the buyer calls the seller's action with an invalid body
    # then the answer is "not yours" (403), not a validation error about the body
    with pytest.raises(NotAllowed):
        action(case=case, actor=buyer, **kwargs)


def test_seller_shipping_the_return_with_a_bad_body_is_refused_as_not_theirs(case, seller):
    with pytest.raises(NotAllowed):
        services.refund_ship_return(case=case, actor=seller, carrier="", tracking_number="")
