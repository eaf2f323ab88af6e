"""The decision SLA in business days of the marketplace calendar (docs/rules.md, Dispute decision),
stored at opening."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from disputes.sweeps import dispute_sweeps_run
from tests.disputes.factories import dispute_for, with_statement

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)


def end_of(day: int, month: int = 10) -> datetime:
    return datetime(2026, month, day, 23, 59, 59, 999999, tzinfo=SHANGHAI)


def test_national_day_week_is_skipped_and_the_makeup_saturday_counts(buyer, seller):
    # given a dispute opened on Wed 30 Sep 2026, the eve of National Day (1-7 Oct off)
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=datetime(2026, 9, 30, 10, tzinfo=SHANGHAI)
    )

    # then business days are Thu 8, Fri 9, Sat 10 (make-up workday) -> target end of Sat 10 Oct,
    # then Mon 12, Tue 13 -> due end of Tue 13 Oct
    assert dispute.decision_target == end_of(10)
    assert dispute.decision_due == end_of(13)
    # the seller's statement window is an exact 48 h, holidays or not
    assert dispute.statement_by == datetime(2026, 10, 2, 10, tzinfo=SHANGHAI)


def test_opened_on_the_friday_before_the_makeup_saturday(buyer, seller):
    # given a dispute opened on Fri 9 Oct 2026 (the opening day never counts)
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=datetime(2026, 10, 9, 15, tzinfo=SHANGHAI)
    )

    # then Sat 10 (make-up), Mon 12, Tue 13 -> target; Wed 14, Thu 15 -> due
    assert dispute.decision_target == end_of(13)
    assert dispute.decision_due == end_of(15)


def test_opened_during_the_holiday(buyer, seller):
    # given a dispute opened on Sat 3 Oct 2026, in the middle of the holiday week
    dispute = dispute_for(
        buyer=buyer, seller=seller, opened_at=datetime(2026, 10, 3, 11, tzinfo=SHANGHAI)
    )

    # then counting starts on Thu 8 Oct: 8, 9, 10 -> target; 12, 13 -> due
    assert dispute.decision_target == end_of(10)
    assert dispute.decision_due == end_of(13)


def test_flags_follow_the_business_day_deadlines(buyer, seller):
    # given the National Day dispute with the seller's statement in
    with_statement(
        dispute_for(
            buyer=buyer, seller=seller, opened_at=datetime(2026, 9, 30, 10, tzinfo=SHANGHAI)
        ),
        now=datetime(2026, 9, 30, 12, tzinfo=SHANGHAI),
    )

    # when the sweep runs through the holiday week nothing is flagged
    assert sum(dispute_sweeps_run(now=end_of(7)).values()) == 0
    # the make-up Saturday still counts: past its end, the target is flagged
    assert dispute_sweeps_run(now=end_of(10))["dispute_sla_target"] == 0
    assert dispute_sweeps_run(now=end_of(10) + SECOND)["dispute_sla_target"] == 1
    # and past the end of Tue 13 Oct the hard deadline
    assert dispute_sweeps_run(now=end_of(13))["dispute_sla_due"] == 0
    assert dispute_sweeps_run(now=end_of(13) + SECOND)["dispute_sla_due"] == 1
