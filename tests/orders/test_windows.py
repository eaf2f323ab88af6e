"""Windows and deadlines (docs/rules.md, Windows; Filing a request), checked at their edges in the
marketplace time zone.

Pure functions: every test passes the instant explicitly, no database, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings

from kernel import windows
from kernel.windows import Window, WindowState

CHINA = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)
MICROSECOND = timedelta(microseconds=1)


def cn(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=CHINA)


def cn_end_of_day(year: int, month: int, day: int) -> datetime:
    return cn(year, month, day, 23, 59, 59, 999999)


def states_around(window: Window, edge: datetime) -> tuple[WindowState, ...]:
    """States one second and one microsecond before, at, and after ``edge``."""
    offsets = (-SECOND, -MICROSECOND, timedelta(0), MICROSECOND, SECOND)
    return tuple(window.state(edge + offset) for offset in offsets)


OPENS: tuple[WindowState, ...] = ("not_open", "not_open", "open", "open", "open")
CLOSES: tuple[WindowState, ...] = ("open", "open", "open", "closed", "closed")


@pytest.fixture(autouse=True)
def china_marketplace() -> Iterator[None]:
    # Independent of the project's settings: the documented default marketplace, default windows.
    with override_settings(
        MARKETPLACE_TIME_ZONE="Asia/Shanghai", MARKETPLACE_HOLIDAY_COUNTRY="CN", REFUND_WINDOWS={}
    ):
        yield


# --- calendar days ----------------------------------------------------------------------------


def test_spec_example_seven_days_end_at_end_of_eighth_of_november_china_time() -> None:
    # given an order placed 1 Nov 20:00 China time
    placed_at = cn(2026, 11, 1, 20)

    # when the 7-day change-of-mind window is computed
    closes_at = windows.end_of_calendar_days(placed_at, 7)

    # then it ends 8 Nov 23:59:59.999999 China time, returned in UTC
    assert closes_at == cn_end_of_day(2026, 11, 8)
    assert closes_at == datetime(2026, 11, 8, 15, 59, 59, 999999, tzinfo=UTC)
    assert closes_at.tzinfo is UTC


def test_change_of_mind_window_edges_without_delivery() -> None:
    # given an undelivered order placed 1 Nov 20:00 China time
    placed_at = cn(2026, 11, 1, 20)

    # when its change-of-mind window is computed
    window = windows.change_of_mind_window(
        placed_at=placed_at, delivered_at=None, return_policy=timedelta(days=15)
    )

    # then it opens at purchase and closes at the end of 8 Nov China time
    assert window.opens_at == placed_at
    assert window.closes_at == cn_end_of_day(2026, 11, 8)
    assert states_around(window, placed_at) == OPENS
    assert states_around(window, window.closes_at) == CLOSES
    assert window.state(cn(2026, 11, 9)) == "closed"


def test_order_placed_late_evening_china_time_uses_the_china_date_not_utc() -> None:
    # given an order placed 1 Nov 23:30 China time, which is 1 Nov 15:30 UTC
    placed_at = cn(2026, 11, 1, 23, 30)
    assert placed_at.astimezone(UTC) == datetime(2026, 11, 1, 15, 30, tzinfo=UTC)

    # when the 7-day window is computed
    window = windows.change_of_mind_window(
        placed_at=placed_at, delivered_at=None, return_policy=timedelta(days=15)
    )

    # then it closes at the end of 8 Nov China time; a UTC calendar would end 8 Nov 23:59 UTC,
    # which is already 9 Nov 07:59 in China, a (China) day too late
    assert window.closes_at == cn_end_of_day(2026, 11, 8)
    assert states_around(window, window.closes_at) == CLOSES
    assert window.state(cn(2026, 11, 9, 7, 59)) == "closed"


def test_order_placed_just_after_midnight_china_time_counts_from_the_china_date() -> None:
    # given an order placed 2 Nov 00:30 China time, still 1 Nov (16:30) in UTC
    placed_at = cn(2026, 11, 2, 0, 30)

    # when 7 calendar days are counted
    closes_at = windows.end_of_calendar_days(placed_at, 7)

    # then the count starts from 2 Nov, the marketplace date, not 1 Nov
    assert closes_at == cn_end_of_day(2026, 11, 9)


def test_return_policy_running_later_than_seven_days_extends_change_of_mind() -> None:
    # given an order placed 1 Nov 20:00 China time, delivered 5 Nov 10:00, policy 15 days
    placed_at = cn(2026, 11, 1, 20)
    delivered_at = cn(2026, 11, 5, 10)

    # when its change-of-mind window is computed
    window = windows.change_of_mind_window(
        placed_at=placed_at, delivered_at=delivered_at, return_policy=timedelta(days=15)
    )

    # then the return policy (an exact duration) wins over the 7 calendar days
    assert window.closes_at == cn(2026, 11, 20, 10)
    assert states_around(window, window.closes_at) == CLOSES


def test_short_return_policy_never_shortens_the_seven_days() -> None:
    # given a 15-minute return policy and a delivery on 2 Nov
    window = windows.change_of_mind_window(
        placed_at=cn(2026, 11, 1, 20),
        delivered_at=cn(2026, 11, 2, 9),
        return_policy=timedelta(minutes=15),
    )

    # then the 7 calendar days after purchase still apply
    assert window.closes_at == cn_end_of_day(2026, 11, 8)


# --- not received -----------------------------------------------------------------------------


def test_not_received_opens_at_deliver_by_and_runs_fourteen_calendar_days() -> None:
    # given a promised delivery 20 Nov 18:00 China time, shipped, not delivered
    deliver_by = cn(2026, 11, 20, 18)

    # when the not_received window is computed
    window = windows.not_received_window(
        placed_at=cn(2026, 11, 1, 20),
        deliver_by=deliver_by,
        shipped_at=cn(2026, 11, 3, 9),
        delivered_at=None,
    )

    # then it opens at deliver_by and closes at the end of 4 Dec China time
    assert window.opens_at == deliver_by
    assert window.closes_at == cn_end_of_day(2026, 12, 4)
    assert states_around(window, deliver_by) == OPENS
    assert states_around(window, window.closes_at) == CLOSES


def test_not_received_without_deliver_by_opens_thirty_days_after_shipping() -> None:
    # given no promised delivery, shipped 3 Nov 23:30 China time
    shipped_at = cn(2026, 11, 3, 23, 30)

    # when the not_received window is computed
    window = windows.not_received_window(
        placed_at=cn(2026, 11, 1, 20), deliver_by=None, shipped_at=shipped_at, delivered_at=None
    )

    # then it opens exactly 30 days after shipping and closes 14 calendar days after that
    assert window.opens_at == cn(2026, 12, 3, 23, 30)
    assert window.closes_at == cn_end_of_day(2026, 12, 17)
    assert states_around(window, window.opens_at) == OPENS
    assert states_around(window, window.closes_at) == CLOSES


def test_not_received_never_shipped_opens_thirty_days_after_purchase() -> None:
    # given an order placed 1 Nov 20:00 China time, never shipped
    window = windows.not_received_window(
        placed_at=cn(2026, 11, 1, 20), deliver_by=None, shipped_at=None, delivered_at=None
    )

    # then the window opens exactly 30 days after purchase, closes 14 calendar days later
    assert window.opens_at == cn(2026, 12, 1, 20)
    assert window.closes_at == cn_end_of_day(2026, 12, 15)
    assert states_around(window, window.opens_at) == OPENS
    assert states_around(window, window.closes_at) == CLOSES


def test_not_received_is_closed_by_delivery() -> None:
    # given a promised delivery 20 Nov and an actual (late) delivery 25 Nov 12:00 China time
    delivered_at = cn(2026, 11, 25, 12)

    # when the not_received window is computed
    window = windows.not_received_window(
        placed_at=cn(2026, 11, 1, 20),
        deliver_by=cn(2026, 11, 20, 18),
        shipped_at=cn(2026, 11, 3, 9),
        delivered_at=delivered_at,
    )

    # then it closes at the delivery, never after
    assert window.closes_at == delivered_at
    assert states_around(window, delivered_at) == CLOSES


def test_not_received_never_opens_when_delivered_before_deliver_by() -> None:
    # given a delivery on 18 Nov, before the promised 20 Nov
    delivered_at = cn(2026, 11, 18, 12)
    window = windows.not_received_window(
        placed_at=cn(2026, 11, 1, 20),
        deliver_by=cn(2026, 11, 20, 18),
        shipped_at=cn(2026, 11, 3, 9),
        delivered_at=delivered_at,
    )

    # then it is not open before delivery, and closed from delivery on (also after deliver_by)
    assert window.state(delivered_at - SECOND) == "not_open"
    assert window.state(delivered_at + SECOND) == "closed"
    assert window.state(cn(2026, 11, 21)) == "closed"


# --- problem reasons and dispatch -------------------------------------------------------------


def test_problem_window_runs_fourteen_calendar_days_from_delivery() -> None:
    # given a delivery 5 Nov 10:00 China time
    delivered_at = cn(2026, 11, 5, 10)

    # when the not_as_described/damaged/wrong_item window is computed
    window = windows.problem_window(delivered_at=delivered_at)

    # then it opens at delivery and closes at the end of 19 Nov China time
    assert window is not None
    assert window.opens_at == delivered_at
    assert window.closes_at == cn_end_of_day(2026, 11, 19)
    assert states_around(window, delivered_at) == OPENS
    assert states_around(window, window.closes_at) == CLOSES


def test_problem_window_is_unknown_before_delivery() -> None:
    assert windows.problem_window(delivered_at=None) is None


@pytest.mark.parametrize(
    ("reason", "expected_closes_at"),
    [
        ("changed_mind", cn(2026, 11, 20, 10)),
        ("other", cn(2026, 11, 20, 10)),
        ("not_received", cn(2026, 11, 5, 10)),
        ("not_as_described", cn_end_of_day(2026, 11, 19)),
        ("damaged", cn_end_of_day(2026, 11, 19)),
        ("wrong_item", cn_end_of_day(2026, 11, 19)),
    ],
)
def test_filing_window_picks_the_window_of_the_reason(
    reason: str, expected_closes_at: datetime
) -> None:
    # given a delivered order with a 15-day return policy
    # when the filing window of the reason is computed
    window = windows.filing_window(
        reason=reason,
        placed_at=cn(2026, 11, 1, 20),
        deliver_by=cn(2026, 11, 4, 18),
        shipped_at=cn(2026, 11, 2, 9),
        delivered_at=cn(2026, 11, 5, 10),
        return_policy=timedelta(days=15),
    )

    # then it closes when that reason's rule says
    assert window is not None
    assert window.closes_at == expected_closes_at


@pytest.mark.parametrize("reason", ["not_as_described", "damaged", "wrong_item"])
def test_filing_window_for_problem_reasons_is_none_before_delivery(reason: str) -> None:
    window = windows.filing_window(
        reason=reason,
        placed_at=cn(2026, 11, 1, 20),
        deliver_by=None,
        shipped_at=None,
        delivered_at=None,
        return_policy=timedelta(days=15),
    )
    assert window is None


def test_filing_window_rejects_unknown_reason() -> None:
    with pytest.raises(ValueError, match="unknown refund reason"):
        windows.filing_window(
            reason="bored",
            placed_at=cn(2026, 11, 1, 20),
            deliver_by=None,
            shipped_at=None,
            delivered_at=None,
            return_policy=timedelta(days=15),
        )


# --- exact durations and day-based case deadlines --------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (lambda t: windows.instant_cancel_until(placed_at=t), timedelta(hours=24)),
        (lambda t: windows.respond_by(filed_at=t), timedelta(hours=48)),
        (lambda t: windows.respond_reminder_at(respond_by=t), -timedelta(hours=24)),
        (lambda t: windows.return_reminder_at(return_by=t), -timedelta(hours=48)),
        (lambda t: windows.offer_answer_by(offered_at=t), timedelta(hours=48)),
        (lambda t: windows.dispute_by(closed_at=t), timedelta(hours=48)),
        (lambda t: windows.dispute_reminder_at(dispute_by=t), -timedelta(hours=12)),
        (lambda t: windows.statement_by(opened_at=t), timedelta(hours=48)),
        (lambda t: windows.payout_target(approved_at=t), timedelta(hours=24)),
        (lambda t: windows.payout_hard(approved_at=t), timedelta(hours=48)),
    ],
)
def test_hour_windows_are_exact_durations(
    deadline: Callable[[datetime], datetime], expected: timedelta
) -> None:
    # given an instant late in the China evening (a calendar rounding would show)
    start = cn(2026, 11, 1, 23, 30)

    # when the deadline is computed
    result = deadline(start)

    # then it is the exact duration away, in UTC
    assert result == start + expected
    assert result.tzinfo is UTC


def test_respond_reminder_is_twenty_four_hours_before_respond_by() -> None:
    filed_at = cn(2026, 11, 1, 23, 30)
    due = windows.respond_by(filed_at=filed_at)
    assert windows.respond_reminder_at(respond_by=due) == cn(2026, 11, 2, 23, 30)


def test_return_by_is_seven_calendar_days_after_the_rma_with_reminder_48h_before() -> None:
    # given an RMA issued 1 Nov 23:30 China time
    due = windows.return_by(rma_issued_at=cn(2026, 11, 1, 23, 30))

    # then the return must be shipped by the end of 8 Nov China time, reminder 6 Nov 23:59
    assert due == cn_end_of_day(2026, 11, 8)
    assert windows.return_reminder_at(return_by=due) == cn_end_of_day(2026, 11, 6)


def test_confirm_by_is_fourteen_calendar_days_after_the_return_shipped() -> None:
    due = windows.confirm_by(return_shipped_at=cn(2026, 11, 2, 0, 30))
    assert due == cn_end_of_day(2026, 11, 16)


# --- business days ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 9, 20), True),  # Sunday, make-up workday for the National Day week
        (date(2026, 9, 25), False),  # Friday, Mid-Autumn Festival
        (date(2026, 9, 26), False),  # Saturday
        (date(2026, 9, 30), True),  # Wednesday
        *((date(2026, 10, day), False) for day in range(1, 8)),  # National Day week
        (date(2026, 10, 8), True),  # Thursday
        (date(2026, 10, 10), True),  # Saturday, make-up workday
        (date(2026, 10, 11), False),  # Sunday
        (date(2026, 10, 12), True),  # Monday
    ],
)
def test_business_days_around_national_day_2026(day: date, expected: bool) -> None:
    assert windows.is_business_day(day) is expected


def test_decision_deadlines_skip_national_day_week_and_count_make_up_saturday() -> None:
    # given a dispute opened Wednesday 30 Sep 2026, 15:00 China time, before National Day
    opened_at = cn(2026, 9, 30, 15)

    # when the decision deadlines are computed
    target = windows.decision_target(opened_at=opened_at)
    due = windows.decision_due(opened_at=opened_at)

    # then 1-7 Oct are skipped and Saturday 10 Oct counts:
    # Thu 8 (1), Fri 9 (2), Sat 10 (3) -> target; Mon 12 (4), Tue 13 (5) -> due
    assert target == cn_end_of_day(2026, 10, 10)
    assert due == cn_end_of_day(2026, 10, 13)
    assert cn(2026, 10, 10, 23, 59, 59) < target < cn(2026, 10, 11)


def test_make_up_sunday_is_the_first_business_day_after_a_saturday_opening() -> None:
    # given a dispute opened Saturday 19 Sep 2026 in China (Sunday 20 Sep is worked)
    opened_at = cn(2026, 9, 19, 10)

    # when one business day is counted
    due = windows.end_of_business_days(opened_at, 1)

    # then the make-up Sunday is that day
    assert due == cn_end_of_day(2026, 9, 20)


def test_decision_deadlines_opened_on_a_friday_evening() -> None:
    # given a dispute opened Friday 13 Nov 2026, 21:00 China time (13:00 UTC)
    opened_at = cn(2026, 11, 13, 21)

    # when the decision deadlines are computed
    target = windows.decision_target(opened_at=opened_at)
    due = windows.decision_due(opened_at=opened_at)

    # then Friday itself and the weekend do not count: Mon, Tue, Wed -> target; Fri -> due
    assert target == cn_end_of_day(2026, 11, 18)
    assert due == cn_end_of_day(2026, 11, 20)
    # one second before / after the edge, China time
    assert cn(2026, 11, 18, 23, 59, 59) < target < cn(2026, 11, 19)
    assert cn(2026, 11, 20, 23, 59, 59) < due < cn(2026, 11, 21)


def test_friday_evening_utc_is_saturday_in_china() -> None:
    # given a dispute opened Friday 25 Sep 2026 17:00 UTC = Saturday 26 Sep 01:00 China time,
    # in the Mid-Autumn weekend before the National Day week
    opened_at = datetime(2026, 9, 25, 17, tzinfo=UTC)

    # when three business days are counted
    target = windows.decision_target(opened_at=opened_at)

    # then counting starts after the China date: Mon 28 (1), Tue 29 (2), Wed 30 (3)
    assert target == cn_end_of_day(2026, 9, 30)


def test_zero_business_days_ends_the_opening_day() -> None:
    assert windows.end_of_business_days(cn(2026, 10, 3, 9), 0) == cn_end_of_day(2026, 10, 3)


def test_business_days_cross_a_year_boundary() -> None:
    # given a dispute opened Wed 30 Dec 2026 in China; 1 Jan 2027 is New Year's Day
    due = windows.end_of_business_days(cn(2026, 12, 30, 12), 2)

    # then Thu 31 Dec counts, Fri 1 Jan does not, the weekend does not; Mon 4 Jan is the second
    assert not windows.is_business_day(date(2027, 1, 1))
    assert due == cn_end_of_day(2027, 1, 4)


# --- settings are read at call time ------------------------------------------------------------


def test_marketplace_time_zone_setting_is_read_at_call_time() -> None:
    # given an order placed 2 Nov 00:30 China time = 1 Nov 16:30 UTC
    placed_at = cn(2026, 11, 2, 0, 30)

    # when the marketplace is switched to UTC
    with override_settings(MARKETPLACE_TIME_ZONE="UTC"):
        closes_at = windows.end_of_calendar_days(placed_at, 7)
        zone = windows.marketplace_tz()

    # then the days are counted from the UTC date and end at UTC midnight
    assert zone == ZoneInfo("UTC")
    assert closes_at == datetime(2026, 11, 8, 23, 59, 59, 999999, tzinfo=UTC)
    assert closes_at != windows.end_of_calendar_days(placed_at, 7)


def test_to_marketplace_shows_the_instant_in_the_marketplace_zone() -> None:
    local = windows.to_marketplace(datetime(2026, 11, 1, 15, 30, tzinfo=UTC))
    assert local.tzinfo == CHINA
    assert (local.day, local.hour, local.minute) == (1, 23, 30)


def test_holiday_country_setting_is_read_at_call_time() -> None:
    # given no holiday country
    with override_settings(MARKETPLACE_HOLIDAY_COUNTRY=""):
        # then only weekends are skipped: National Day is worked, make-up Saturday is not
        assert windows.is_business_day(date(2026, 10, 1))
        assert not windows.is_business_day(date(2026, 10, 10))


def test_refund_windows_override_keeps_the_other_defaults() -> None:
    # given only the change-of-mind days overridden
    with override_settings(REFUND_WINDOWS={"change_of_mind_days": 3}):
        # then that window changes and the others keep the documented defaults
        assert windows.window("change_of_mind_days") == 3
        assert windows.window("seller_response") == timedelta(hours=48)
        window = windows.change_of_mind_window(
            placed_at=cn(2026, 11, 1, 20), delivered_at=None, return_policy=timedelta(days=1)
        )
    assert window.closes_at == cn_end_of_day(2026, 11, 4)


def test_defaults_apply_when_refund_windows_setting_is_missing() -> None:
    with override_settings():
        from django.conf import settings

        del settings.REFUND_WINDOWS
        assert windows.window("decision_due_business_days") == 5
        assert windows.window("return_policy_default") == timedelta(days=15)


def test_unknown_window_name_and_wrong_types_fail_loudly() -> None:
    with pytest.raises(KeyError):
        windows.window("coffee_break")
    with (
        override_settings(REFUND_WINDOWS={"seller_response": 48}),
        pytest.raises(ImproperlyConfigured),
    ):
        windows.respond_by(filed_at=cn(2026, 11, 1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        windows.end_of_calendar_days(datetime(2026, 11, 1, 20), 7)
    with pytest.raises(ValueError, match="aware"):
        windows.respond_by(filed_at=datetime(2026, 11, 1, 20))
    with pytest.raises(ValueError, match="aware"):
        Window(opens_at=cn(2026, 11, 1), closes_at=cn(2026, 11, 2)).state(datetime(2026, 11, 1))


# --- seller return policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [timedelta(minutes=15), timedelta(days=15), timedelta(days=30)],
)
def test_return_policy_within_bounds_is_valid(value: timedelta) -> None:
    windows.validate_return_policy(value)


@pytest.mark.parametrize(
    "value",
    [timedelta(minutes=14, seconds=59), timedelta(days=30, seconds=1)],
)
def test_return_policy_outside_bounds_is_refused(value: timedelta) -> None:
    with pytest.raises(ValidationError) as excinfo:
        windows.validate_return_policy(value)
    assert excinfo.value.code == "return_policy_out_of_range"
    assert "15 minutes" in excinfo.value.messages[0]
    assert "30 days" in excinfo.value.messages[0]


# --- display --------------------------------------------------------------------------------------


def test_format_both_shows_marketplace_and_viewer_time() -> None:
    # given the documented example's deadline and a viewer in Berlin (CET in November)
    deadline = cn_end_of_day(2026, 11, 8)

    # then both are shown
    assert windows.format_both(deadline, "Europe/Berlin") == (
        "8 Nov 2026, 23:59 Asia/Shanghai · 8 Nov 2026, 16:59 Europe/Berlin"
    )


def test_format_both_follows_the_viewers_daylight_saving_time() -> None:
    # given a deadline in July, when Berlin is on CEST (UTC+2)
    assert windows.format_both(cn(2026, 7, 1, 12), "Europe/Berlin") == (
        "1 Jul 2026, 12:00 Asia/Shanghai · 1 Jul 2026, 06:00 Europe/Berlin"
    )


@pytest.mark.parametrize("viewer_tz", [None, "", "Asia/Shanghai", "Mars/Olympus_Mons"])
def test_format_both_shows_the_marketplace_time_once(viewer_tz: str | None) -> None:
    shown = windows.format_both(cn(2026, 11, 8, 9, 5), viewer_tz)
    assert shown == "8 Nov 2026, 09:05 Asia/Shanghai"
