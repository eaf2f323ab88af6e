"""SLA flags of disputes (docs/rules.md, Dispute decision): set once by the sweep, however often or
concurrently it runs."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from disputes.models import Dispute
from disputes.sweeps import dispute_sweeps_run
from orders.models import Event
from refundportal.deadlines import enforce_all
from tests.conftest import requires_postgres
from tests.disputes.factories import decided, dispute_for, with_statement
from tests.orders.factories import UserFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
SECOND = timedelta(seconds=1)
# Wed 4 Mar 2026 10:00 China time: statement by Fri 6 Mar 10:00, target Mon 9 Mar (end of day),
# due Wed 11 Mar (end of day).
OPENED = datetime(2026, 3, 4, 10, tzinfo=SHANGHAI)


def kinds(dispute: Dispute) -> list[str]:
    return list(
        Event.objects.filter(dispute_id=dispute.public_id, kind__startswith="dispute.")
        .exclude(kind="dispute.opened")
        .order_by("id")
        .values_list("kind", flat=True)
    )


def test_statement_window_lapse_is_flagged_once(buyer, seller):
    # given a dispute the seller did not answer
    dispute = dispute_for(buyer=buyer, seller=seller, opened_at=OPENED)

    # when the sweep runs at the deadline, then nothing yet; one second after, the flag
    assert dispute_sweeps_run(now=dispute.statement_by)["dispute_statement_window"] == 0
    moved = dispute_sweeps_run(now=dispute.statement_by + SECOND)
    assert moved == {"dispute_statement_window": 1, "dispute_sla_target": 0, "dispute_sla_due": 0}
    # and again: nothing new
    assert dispute_sweeps_run(now=dispute.statement_by + timedelta(hours=1)) == {
        "dispute_statement_window": 0,
        "dispute_sla_target": 0,
        "dispute_sla_due": 0,
    }

    dispute.refresh_from_db()
    assert dispute.statement_lapsed_at == dispute.statement_by + SECOND
    assert kinds(dispute) == ["dispute.statement_window_lapsed"]
    event = Event.objects.get(kind="dispute.statement_window_lapsed")
    assert event.payload["notify"] == {"staff": True}
    assert event.payload["order_number"] == dispute.case.order.number
    assert event.case_id == dispute.case.public_id


def test_no_lapse_once_the_seller_made_a_statement(buyer, seller):
    dispute = with_statement(
        dispute_for(buyer=buyer, seller=seller, opened_at=OPENED), now=OPENED + timedelta(hours=1)
    )
    assert dispute_sweeps_run(now=dispute.statement_by + SECOND)["dispute_statement_window"] == 0


def test_target_then_due_are_flagged_once_each(buyer, seller):
    dispute = with_statement(
        dispute_for(buyer=buyer, seller=seller, opened_at=OPENED), now=OPENED + timedelta(hours=1)
    )

    # at the target's last instant nothing; just after it, the target flag only
    assert dispute_sweeps_run(now=dispute.decision_target)["dispute_sla_target"] == 0
    assert dispute_sweeps_run(now=dispute.decision_target + SECOND)["dispute_sla_target"] == 1
    assert dispute_sweeps_run(now=dispute.decision_due)["dispute_sla_due"] == 0
    # past the hard deadline: the due flag, staff and the buyer told; then nothing more
    assert dispute_sweeps_run(now=dispute.decision_due + SECOND)["dispute_sla_due"] == 1
    assert dispute_sweeps_run(now=dispute.decision_due + timedelta(days=3)) == {
        "dispute_statement_window": 0,
        "dispute_sla_target": 0,
        "dispute_sla_due": 0,
    }

    dispute.refresh_from_db()
    assert dispute.target_flagged_at and dispute.due_flagged_at
    assert kinds(dispute) == [
        "dispute.statement_added",
        "dispute.sla_target_passed",
        "dispute.sla_due_passed",
    ]
    due = Event.objects.get(kind="dispute.sla_due_passed")
    assert due.payload["notify"] == {"staff": True, "buyer": buyer.pk}
    assert due.payload["decision_due"] == dispute.decision_due.isoformat()
    assert Event.objects.get(kind="dispute.sla_target_passed").payload["notify"] == {"staff": True}


def test_a_sweep_that_missed_days_flags_each_clock_once(buyer, seller):
    # given a dispute nobody touched and a sweep that first runs a week late
    dispute = dispute_for(buyer=buyer, seller=seller, opened_at=OPENED)

    moved = dispute_sweeps_run(now=OPENED + timedelta(days=10))

    assert moved == {"dispute_statement_window": 1, "dispute_sla_target": 1, "dispute_sla_due": 1}
    assert sorted(kinds(dispute)) == [
        "dispute.sla_due_passed",
        "dispute.sla_target_passed",
        "dispute.statement_window_lapsed",
    ]


def test_decided_and_withdrawn_disputes_are_not_flagged(buyer, seller, other_buyer, staff):
    from disputes.services import dispute_withdraw

    done = decided(
        dispute_for(buyer=buyer, seller=seller, opened_at=OPENED),
        staff=staff,
        now=OPENED + timedelta(hours=2),
    )
    gone = dispute_withdraw(
        dispute=dispute_for(buyer=other_buyer, seller=seller, opened_at=OPENED),
        buyer=other_buyer,
        now=OPENED + timedelta(hours=2),
    )

    assert sum(dispute_sweeps_run(now=OPENED + timedelta(days=30)).values()) == 0
    assert kinds(done) == ["dispute.statement_added", "dispute.decided"]
    assert kinds(gone) == ["dispute.withdrawn"]


def test_enforce_deadlines_runs_the_dispute_sweeps(buyer, seller):
    dispute_for(buyer=buyer, seller=seller, opened_at=OPENED)
    moved = enforce_all(now=OPENED + timedelta(days=10))
    assert moved["dispute_sla_due"] == 1


def test_batches_cover_every_due_dispute(seller):
    for _ in range(5):
        dispute_for(buyer=UserFactory(), seller=seller, opened_at=OPENED)
    moved = dispute_sweeps_run(now=OPENED + timedelta(days=10), batch_size=2)
    assert moved == {"dispute_statement_window": 5, "dispute_sla_target": 5, "dispute_sla_due": 5}
    assert Event.objects.filter(kind="dispute.sla_due_passed").count() == 5


def test_a_pass_costs_the_same_queries_at_n_and_3n_due_disputes(seller):
    # given N overdue disputes, swept, then 3N more, each pass in one batch per clock
    def queries_for(due: int) -> int:
        for _ in range(due):
            dispute_for(buyer=UserFactory(), seller=seller, opened_at=OPENED)
        with CaptureQueriesContext(connection) as ctx:
            moved = dispute_sweeps_run(now=OPENED + timedelta(days=10), batch_size=100)
        assert set(moved.values()) == {due}
        return len(ctx.captured_queries)

    # when / then: set-based, and each event reads only what the sweep fetched
    assert queries_for(4) == queries_for(12)


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_flag_each_dispute_once(seller):
    # given twelve overdue disputes
    for _ in range(12):
        dispute_for(buyer=UserFactory(), seller=seller, opened_at=OPENED)
    barrier = threading.Barrier(3)
    totals: list[dict[str, int]] = []

    def sweep() -> None:
        try:
            barrier.wait()
            totals.append(dispute_sweeps_run(now=OPENED + timedelta(days=10), batch_size=3))
        finally:
            connection.close()

    # when three sweeps run at once
    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every dispute was flagged exactly once per clock, whoever did it
    for name in ("dispute_statement_window", "dispute_sla_target", "dispute_sla_due"):
        assert sum(t[name] for t in totals) == 12, totals
    for kind in (
        "dispute.statement_window_lapsed",
        "dispute.sla_target_passed",
        "dispute.sla_due_passed",
    ):
        assert Event.objects.filter(kind=kind).count() == 12
        assert Event.objects.filter(kind=kind).values("dispute_id").distinct().count() == 12


def test_the_sweep_writes_the_event_the_dispute_services_build(seller, staff):
    # given overdue disputes, one assigned, one waiting for the seller's answer
    from disputes import services
    from disputes.events import dispute_event

    made = [dispute_for(buyer=UserFactory(), seller=seller, opened_at=OPENED) for _ in range(3)]
    services.dispute_assign(dispute=made[0], staff=staff, assignee=staff)
    services.dispute_request_info(
        dispute=made[1], staff=staff, party="seller", question="?", now=OPENED + timedelta(hours=1)
    )
    now = OPENED + timedelta(days=10, microseconds=123456)

    # when every clock is swept
    dispute_sweeps_run(now=now)

    # then each flag's event is, field for field, what the dispute's own event function builds
    flagged = Event.objects.filter(
        dispute_id__in=[d.public_id for d in made],
        kind__in=[
            "dispute.statement_window_lapsed",
            "dispute.sla_target_passed",
            "dispute.sla_due_passed",
        ],
    ).order_by("id")
    assert flagged.count() == 9
    for event in flagged:
        dispute = Dispute.objects.get(public_id=event.dispute_id)
        expected = dispute_event(
            dispute=dispute, kind=event.kind, actor=None, from_state=dispute.state, at=now
        )
        assert event.payload == expected.payload
        assert (event.from_state, event.to_state, event.created_at, event.actor_id) == (
            expected.from_state,
            expected.to_state,
            now,
            None,
        )
    info = Dispute.objects.get(pk=made[1].pk)
    assert (
        Event.objects.filter(dispute_id=info.public_id, kind="dispute.sla_due_passed")
        .get()
        .payload["info_party"]
        == "seller"
    )
