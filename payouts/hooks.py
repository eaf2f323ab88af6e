"""Extension points for the apps above `payouts` (which `payouts` may not import).

`refunds` and `disputes` register here in their AppConfig.ready(); nothing is signal-driven.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Payout

# purpose -> called inside the payout's settling transaction once the gateway confirmed it.
payout_succeeded: dict[str, Callable[[Payout, datetime], None]] = {}
