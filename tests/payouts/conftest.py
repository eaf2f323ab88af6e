"""Fixtures of the payout tests."""

from __future__ import annotations

import pytest

from tests.payouts.helpers import WEBHOOK_SECRET
from tests.payouts.stripe_server import StripeServer


@pytest.fixture
def stripe(stripe_server: StripeServer, settings) -> StripeServer:
    """The local Stripe server, and the webhook endpoint's signing secret set."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return stripe_server
