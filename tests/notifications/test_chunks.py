"""Fresh notices go out in chunks; each notice keeps the single task's guarantees."""

from __future__ import annotations

import pytest
from django.core import mail

from notifications import services, tasks
from notifications.models import Notification, Status
from notifications.services import notifications_fan_out, notifications_send_many
from notifications.tasks import notifications_deliver_chunk
from tests.notifications.backends import FailingForSome
from tests.notifications.conftest import record
from tests.orders.factories import OrderFactory, UserFactory


@pytest.fixture
def fresh(seller):
    """Five fresh notices to five buyers of the seller's shop."""
    buyers = [UserFactory(email=f"chunk{i}@example.com") for i in range(5)]
    for buyer in buyers:
        record(
            OrderFactory(buyer=buyer, shop=seller.shops.get()),
            "refund.offer_made",
            notify=("buyer",),
            offer_amount="10.000",
        )
    return notifications_fan_out()


def test_the_dispatcher_queues_fresh_notices_in_chunks(fresh, monkeypatch):
    monkeypatch.setattr(tasks, "DELIVERY_CHUNK", 2)
    calls: list[list[int]] = []
    real = notifications_deliver_chunk.apply_async

    def spy(args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(args[0]))
        return real(args, **kwargs)

    monkeypatch.setattr(notifications_deliver_chunk, "apply_async", spy)

    assert tasks.queue_deliveries(fresh, chunk=tasks.DELIVERY_CHUNK)

    assert calls == [fresh[0:2], fresh[2:4]]  # the odd one out goes as a single delivery
    assert len(mail.outbox) == 5


def test_a_chunk_run_twice_sends_each_notice_once(fresh):
    first = notifications_deliver_chunk.delay(fresh).get()
    second = notifications_deliver_chunk.delay(fresh).get()

    assert first == {"sent": 5, "skipped": 0, "failed": 0, "handed_back": 0}
    assert second == {"sent": 0, "skipped": 5, "failed": 0, "handed_back": 0}
    assert len(mail.outbox) == 5
    assert Notification.objects.filter(status=Status.SENT, attempts=1).count() == 5


def test_a_chunk_leaves_alone_a_notice_another_worker_holds(fresh):
    services._claim([fresh[2]], services.timezone.now())

    outcome = notifications_send_many(notification_ids=fresh)

    assert outcome.skipped == [fresh[2]]
    assert len(outcome.sent) == 4
    assert Notification.objects.get(pk=fresh[2]).status == Status.SENDING


def test_a_notice_failing_in_a_chunk_is_recorded_and_retried_alone(fresh, settings, monkeypatch):
    settings.EMAIL_BACKEND = "tests.notifications.backends.FailingForSome"
    monkeypatch.setattr(FailingForSome, "refused", {"chunk1@example.com"})

    outcome = notifications_send_many(notification_ids=fresh)

    assert outcome.failed == [fresh[1]]
    assert len(outcome.sent) == 4 and len(mail.outbox) == 4
    notice = Notification.objects.get(pk=fresh[1])
    assert notice.status == Status.FAILED and notice.attempts == 1
    assert "SMTPRecipientsRefused" in notice.last_error

    # the single task takes it from there, with the same row
    monkeypatch.setattr(FailingForSome, "refused", set())
    assert services.notification_send(notification_id=fresh[1]) == "sent"
    assert Notification.objects.get(pk=fresh[1]).attempts == 2


def test_a_chunk_stops_after_three_failures_in_a_row_and_hands_the_rest_back(fresh, settings):
    settings.EMAIL_BACKEND = "tests.notifications.backends.FailingBackend"

    outcome = notifications_send_many(notification_ids=fresh)

    assert outcome.failed == fresh[:3]
    assert outcome.not_tried == fresh[3:]
    untried = Notification.objects.filter(pk__in=fresh[3:])
    assert {(n.status, n.attempts) for n in untried} == {(Status.PENDING, 0)}


def test_the_chunk_task_queues_each_failed_notice_on_its_own(fresh, settings, monkeypatch):
    settings.EMAIL_BACKEND = "tests.notifications.backends.FailingForSome"
    monkeypatch.setattr(FailingForSome, "refused", {"chunk0@example.com", "chunk3@example.com"})
    handed: list[tuple[list[int], dict]] = []
    monkeypatch.setattr(
        tasks, "queue_deliveries", lambda ids, **kw: handed.append((list(ids), kw)) or True
    )

    result = notifications_deliver_chunk.delay(fresh).get()

    assert result == {"sent": 3, "skipped": 0, "failed": 2, "handed_back": 0}
    assert handed == [([fresh[0], fresh[3]], {"countdown": tasks.FIRST_RETRY_COUNTDOWN})]
