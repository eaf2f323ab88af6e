"""Explicit extension points for the apps above `orders` (which `orders` may not import).

`refunds` and `disputes` register here in their AppConfig.ready(); nothing is signal-driven.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Order

# Each raises a DomainError when the order may not be cancelled now (e.g. a refund case is open).
cancel_guards: list[Callable[[Order], None]] = []
# Called once after each commit that wrote audit events (notifications queue their dispatch).
events_written: list[Callable[[], None]] = []
