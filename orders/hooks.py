"""Explicit extension points for the apps above `orders` (which `orders` may not import).

`refunds` and `notifications` register here in their AppConfig.ready(); nothing is signal-driven.
"""

from __future__ import annotations

from collections.abc import Callable

# Each answers, for some order ids, why those orders may not be cancelled now (e.g. a refund case
# is open), by id: one query for any number of orders. Read by `orders.rules.order_cancel_holds`.
cancel_holds: list[Callable[[list[int]], dict[int, str]]] = []
# Called once after each commit that wrote audit events (notifications queue their dispatch).
events_written: list[Callable[[], None]] = []
