"""Every window and deadline of the product (docs/rules.md, Windows; Filing a request), computed in
one place.

All functions are pure: they take the instant they start from (or ``now``) explicitly and never
read the clock. Instants in and out are aware datetimes; results are in UTC.

Two kinds of window (docs/rules.md, Exact durations and calendar days):

* windows given in minutes or hours are exact durations;
* windows given in days are calendar days in the marketplace time zone: N days from an instant end
  at 23:59:59.999999 of the Nth day after that instant's local date. Business days are counted the
  same way, skipping weekends and the public holidays of ``MARKETPLACE_HOLIDAY_COUNTRY`` while
  honouring make-up workdays (China's adjusted working Saturdays/Sundays); the opening day never
  counts.

Settings are read at call time so ``override_settings`` and per-deployment values take effect.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, Literal

import holidays
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

__all__ = [
    "DEFAULT_HOLIDAY_COUNTRY",
    "DEFAULT_TIME_ZONE",
    "DEFAULT_WINDOWS",
    "Window",
    "WindowState",
    "change_of_mind_window",
    "confirm_by",
    "decision_due",
    "decision_target",
    "dispute_by",
    "dispute_reminder_at",
    "end_of_business_days",
    "end_of_calendar_days",
    "filing_window",
    "format_both",
    "instant_cancel_until",
    "is_business_day",
    "marketplace_tz",
    "not_received_window",
    "offer_answer_by",
    "payout_hard",
    "payout_target",
    "problem_window",
    "respond_by",
    "respond_reminder_at",
    "return_by",
    "return_reminder_at",
    "statement_by",
    "to_marketplace",
    "validate_return_policy",
    "window",
]

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"
DEFAULT_HOLIDAY_COUNTRY: Final = "CN"

# docs/rules.md (Windows): every window is a setting; these are the documented defaults. Keys ending
# in ``_days`` or ``_business_days`` are whole (calendar / business) days, everything else is an
# exact duration.
DEFAULT_WINDOWS: Final[dict[str, timedelta | int]] = {
    "instant_cancel": timedelta(hours=24),
    "change_of_mind_days": 7,
    "guarantee_days": 14,
    "not_received_fallback_days": 30,
    "seller_response": timedelta(hours=48),
    "seller_response_reminder": timedelta(hours=24),
    "return_shipping_days": 7,
    "return_shipping_reminder": timedelta(hours=48),
    "return_confirmation_days": 14,
    "payout_target": timedelta(hours=24),
    "payout_hard": timedelta(hours=48),
    "offer_answer": timedelta(hours=48),
    "dispute_filing": timedelta(hours=48),
    "dispute_filing_reminder": timedelta(hours=12),
    "seller_statement": timedelta(hours=48),
    "decision_target_business_days": 3,
    "decision_due_business_days": 5,
    "return_policy_min": timedelta(minutes=15),
    "return_policy_max": timedelta(days=30),
    "return_policy_default": timedelta(days=15),
}

WindowState = Literal["not_open", "open", "closed"]

CHANGE_OF_MIND_REASONS: Final = frozenset({"changed_mind", "other"})
PROBLEM_REASONS: Final = frozenset({"not_as_described", "damaged", "wrong_item"})
NOT_RECEIVED_REASON: Final = "not_received"


# --- settings -------------------------------------------------------------------------------


def window(name: str) -> timedelta | int:
    """The configured value of window ``name`` (``settings.REFUND_WINDOWS`` over the defaults)."""
    if name not in DEFAULT_WINDOWS:
        raise KeyError(f"unknown refund window {name!r}")
    configured: dict[str, timedelta | int] = getattr(settings, "REFUND_WINDOWS", None) or {}
    return configured.get(name, DEFAULT_WINDOWS[name])


def _duration(name: str) -> timedelta:
    value = window(name)
    if not isinstance(value, timedelta):
        raise ImproperlyConfigured(f"REFUND_WINDOWS[{name!r}] must be a timedelta, got {value!r}")
    return value


def _days(name: str) -> int:
    value = window(name)
    # bool is an int subclass; True days is certainly a configuration mistake.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImproperlyConfigured(
            f"REFUND_WINDOWS[{name!r}] must be a non-negative whole number of days, got {value!r}"
        )
    return value


def marketplace_tz() -> zoneinfo.ZoneInfo:
    """The marketplace time zone (``settings.MARKETPLACE_TIME_ZONE``, default Asia/Shanghai)."""
    key: str = getattr(settings, "MARKETPLACE_TIME_ZONE", None) or DEFAULT_TIME_ZONE
    return zoneinfo.ZoneInfo(key)


def _holiday_country() -> str | None:
    country: str | None = getattr(settings, "MARKETPLACE_HOLIDAY_COUNTRY", DEFAULT_HOLIDAY_COUNTRY)
    return country or None


# --- instants and calendar ------------------------------------------------------------------


def _require_aware(instant: datetime, what: str = "instant") -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {instant!r}")
    return instant


def _utc(instant: datetime) -> datetime:
    return _require_aware(instant).astimezone(UTC)


def to_marketplace(instant: datetime) -> datetime:
    """``instant`` seen in the marketplace time zone."""
    return _require_aware(instant).astimezone(marketplace_tz())


def _end_of_local_day(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=marketplace_tz()).astimezone(UTC)


def end_of_calendar_days(start: datetime, days: int) -> datetime:
    """End (23:59:59.999999, marketplace time) of the ``days``-th day after ``start``'s local date.

    docs/rules.md (Exact durations and calendar days): placed 1 Nov 20:00 China time, 7 days -> 8
    Nov 23:59:59.999999 China time.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    return _end_of_local_day(to_marketplace(start).date() + timedelta(days=days))


@functools.lru_cache(maxsize=64)
def _holiday_calendar(country: str, first_year: int, last_year: int) -> holidays.HolidayBase:
    # expand=False: a cached object must never be mutated by a lookup (lookups outside the
    # pre-computed years would otherwise populate it lazily, possibly from several threads).
    # Neighbouring years are included because make-up workdays can be announced in the next
    # year's calendar (e.g. a working Saturday on 29 Dec that belongs to New Year's bridge).
    return holidays.country_holidays(country, years=range(first_year, last_year + 1), expand=False)


def is_business_day(day: date) -> bool:
    """Whether ``day`` (a marketplace-local date) is a working day.

    Weekends and public holidays of ``MARKETPLACE_HOLIDAY_COUNTRY`` are not; make-up workdays
    (a Saturday or Sunday worked in exchange for a bridge day) are. Without a holiday country
    only weekends are skipped.
    """
    if isinstance(day, datetime):
        raise TypeError("is_business_day takes a marketplace-local date, not a datetime")
    country = _holiday_country()
    if country is None:
        return day.weekday() < 5
    return _holiday_calendar(country, day.year - 1, day.year + 1).is_working_day(day)


def end_of_business_days(start: datetime, days: int) -> datetime:
    """End of the ``days``-th business day after ``start``'s local date (the opening day
    never counts, whether or not it is a business day)."""
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    day = to_marketplace(start).date()
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_business_day(day):
            remaining -= 1
    return _end_of_local_day(day)


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A filing window: open when ``opens_at <= now <= closes_at``.

    ``closes_at`` may precede ``opens_at`` (a ``not_received`` window cut short by a delivery
    before it opened): such a window never opens and reads ``closed`` from ``closes_at`` on.
    """

    opens_at: datetime
    closes_at: datetime

    def state(self, now: datetime) -> WindowState:
        _require_aware(now, "now")
        if now > self.closes_at:
            return "closed"
        if now < self.opens_at:
            return "not_open"
        return "open"


def instant_cancel_until(*, placed_at: datetime) -> datetime:
    """Last moment an unshipped order is cancelled and refunded at once (docs/rules.md, Instant
    cancellation)."""
    return _utc(placed_at) + _duration("instant_cancel")


def change_of_mind_window(
    *, placed_at: datetime, delivered_at: datetime | None, return_policy: timedelta
) -> Window:
    """``changed_mind``/``other``: from purchase until the later of 7 calendar days after
    purchase and ``delivered_at`` + the seller's return policy (docs/rules.md, Filing a request)."""
    closes_at = end_of_calendar_days(placed_at, _days("change_of_mind_days"))
    if delivered_at is not None:
        closes_at = max(closes_at, _utc(delivered_at) + return_policy)
    return Window(opens_at=_utc(placed_at), closes_at=closes_at)


def not_received_window(
    *,
    placed_at: datetime,
    deliver_by: datetime | None,
    shipped_at: datetime | None,
    delivered_at: datetime | None,
) -> Window:
    """``not_received``: opens at ``deliver_by``, else ``shipped_at`` + 30 days, else
    ``placed_at`` + 30 days (exact durations); closes 14 calendar days after it opened, and
    never after ``delivered_at`` (docs/rules.md, Filing a request)."""
    fallback = timedelta(days=_days("not_received_fallback_days"))
    if deliver_by is not None:
        opens_at = _utc(deliver_by)
    elif shipped_at is not None:
        opens_at = _utc(shipped_at) + fallback
    else:
        opens_at = _utc(placed_at) + fallback
    closes_at = end_of_calendar_days(opens_at, _days("guarantee_days"))
    if delivered_at is not None:
        closes_at = min(closes_at, _utc(delivered_at))
    return Window(opens_at=opens_at, closes_at=closes_at)


def problem_window(*, delivered_at: datetime | None) -> Window | None:
    """``not_as_described``/``damaged``/``wrong_item``: 14 calendar days from delivery; ``None``
    before delivery (the window has no known opening yet)."""
    if delivered_at is None:
        return None
    return Window(
        opens_at=_utc(delivered_at),
        closes_at=end_of_calendar_days(delivered_at, _days("guarantee_days")),
    )


def filing_window_kind(reason: str) -> str:
    """Which of the three filing windows a reason has (reasons of one kind share it)."""
    if reason in CHANGE_OF_MIND_REASONS:
        return "change_of_mind"
    if reason == NOT_RECEIVED_REASON:
        return "not_received"
    if reason in PROBLEM_REASONS:
        return "problem"
    raise ValueError(f"unknown refund reason {reason!r}")


def filing_window(
    *,
    reason: str,
    placed_at: datetime,
    deliver_by: datetime | None,
    shipped_at: datetime | None,
    delivered_at: datetime | None,
    return_policy: timedelta,
) -> Window | None:
    """The window in which a refund request with ``reason`` may be filed.

    ``None`` when it cannot be computed yet (a problem reason before delivery); callers treat
    that as ``window_not_open`` with no date.
    """
    kind = filing_window_kind(reason)
    if kind == "change_of_mind":
        return change_of_mind_window(
            placed_at=placed_at, delivered_at=delivered_at, return_policy=return_policy
        )
    if kind == "not_received":
        return not_received_window(
            placed_at=placed_at,
            deliver_by=deliver_by,
            shipped_at=shipped_at,
            delivered_at=delivered_at,
        )
    return problem_window(delivered_at=delivered_at)


# --- case and dispute deadlines -------------------------------------------------------------


def respond_by(*, filed_at: datetime) -> datetime:
    """Seller's answer is due; afterwards the request is auto-accepted."""
    return _utc(filed_at) + _duration("seller_response")


def respond_reminder_at(*, respond_by: datetime) -> datetime:
    """Remind the seller when this much of the response window remains."""
    return _utc(respond_by) - _duration("seller_response_reminder")


def return_by(*, rma_issued_at: datetime) -> datetime:
    """Buyer must have shipped the return (entered tracking) by then, else ``expired``."""
    return end_of_calendar_days(rma_issued_at, _days("return_shipping_days"))


def return_reminder_at(*, return_by: datetime) -> datetime:
    return _utc(return_by) - _duration("return_shipping_reminder")


def confirm_by(*, return_shipped_at: datetime) -> datetime:
    """Seller silent until then: receipt of the return is assumed."""
    return end_of_calendar_days(return_shipped_at, _days("return_confirmation_days"))


def offer_answer_by(*, offered_at: datetime) -> datetime:
    """Buyer silent until then: the offer lapses (``offer_declined``)."""
    return _utc(offered_at) + _duration("offer_answer")


def dispute_by(*, closed_at: datetime) -> datetime:
    """Last moment to open a dispute on a closed case."""
    return _utc(closed_at) + _duration("dispute_filing")


def dispute_reminder_at(*, dispute_by: datetime) -> datetime:
    return _utc(dispute_by) - _duration("dispute_filing_reminder")


def statement_by(*, opened_at: datetime) -> datetime:
    """Seller's statement in a dispute is due."""
    return _utc(opened_at) + _duration("seller_statement")


def decision_target(*, opened_at: datetime) -> datetime:
    """Past this the dispute is flagged first in the staff queue."""
    return end_of_business_days(opened_at, _days("decision_target_business_days"))


def decision_due(*, opened_at: datetime) -> datetime:
    """Hard deadline of a dispute decision: escalation email to staff."""
    return end_of_business_days(opened_at, _days("decision_due_business_days"))


def payout_target(*, approved_at: datetime) -> datetime:
    return _utc(approved_at) + _duration("payout_target")


def payout_hard(*, approved_at: datetime) -> datetime:
    """Past this unpaid: staff alerted, buyer told."""
    return _utc(approved_at) + _duration("payout_hard")


# --- seller return policy and display -------------------------------------------------------


def validate_return_policy(value: timedelta) -> None:
    """Seller's return policy must be 15 minutes … 30 days (bounds inclusive)."""
    low, high = _duration("return_policy_min"), _duration("return_policy_max")
    if not isinstance(value, timedelta) or not low <= value <= high:
        raise ValidationError(
            "The return policy must be between %(low)s and %(high)s.",
            code="return_policy_out_of_range",
            params={"low": duration_words(low), "high": duration_words(high)},
        )


def duration_words(duration: timedelta) -> str:
    """A duration in words, whole minutes: "15 days", "2 hours 30 minutes"."""
    minutes = int(duration.total_seconds()) // 60
    parts = []
    for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 minutes"


def _format_in(instant: datetime, tz: zoneinfo.ZoneInfo) -> str:
    local = instant.astimezone(tz)
    return f"{local.day} {local:%b %Y, %H:%M} {tz.key}"


def format_both(instant: datetime, viewer_tz: str | None) -> str:
    """``instant`` in the marketplace zone and the viewer's, e.g.
    ``"8 Nov 2026, 23:59 Asia/Shanghai · 8 Nov 2026, 16:59 Europe/Berlin"``.

    Shown once when the viewer's zone is the marketplace's, unknown or not given.
    """
    _require_aware(instant)
    market = marketplace_tz()
    shown = _format_in(instant, market)
    if not viewer_tz or viewer_tz == market.key:
        return shown
    try:
        viewer = zoneinfo.ZoneInfo(viewer_tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return shown
    return f"{shown} · {_format_in(instant, viewer)}"
