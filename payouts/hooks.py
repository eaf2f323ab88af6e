"""Extension points for the apps above `payouts` (which `payouts` may not import).

`refunds` and `disputes` register here in their AppConfig.ready(); nothing is signal-driven.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Chargeback, Payout

# purpose -> called inside the payout's settling transaction once the gateway confirmed it.
payout_succeeded: dict[str, Callable[[Payout, datetime], None]] = {}
# Called inside the transaction that records a lost chargeback, holding the order's lock: each
# app closes what it has open on the order, with the reason `chargeback` (docs/rules.md,
# Chargebacks).
chargeback_lost: list[Callable[[Chargeback, datetime], None]] = []
