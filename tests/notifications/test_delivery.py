"""Sent once, retried on failure, recorded, and never in the way of the transition (docs/rules.md,
Notifications)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError

from notifications import services, tasks
from notifications.models import Notification, Status
from notifications.services import MAX_ATTEMPTS, notification_send, notifications_fan_out
from notifications.tasks import (
    notification_deliver,
    notifications_dispatch,
    notifications_redispatch,
)
from orders import hooks
from orders.models import Event
from refunds.models import RefundCase, State
from tests.conftest import requires_postgres
from tests.notifications.backends import FailingBackend
from tests.notifications.conftest import OPS, dispatch, mails_to, record
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

# --- sent once ------------------------------------------------------------------------------


def test_dispatch_run_twice_sends_each_notice_once(order, buyer, seller):
    record(order, "order.cancelled", notify=("buyer", "seller"), amount="59.900")

    dispatch()
    dispatch()

    assert len(mails_to(buyer.email)) == 1
    assert len(mails_to(seller.email)) == 1
    assert Notification.objects.count() == 2
    assert notifications_fan_out() == []


def test_the_deliver_task_run_twice_sends_once(order, seller):
    record(order, "refund.requested", notify=("seller",))
    [notification_id] = notifications_fan_out()

    assert notification_deliver.delay(notification_id).get() == "sent"
    assert notification_deliver.delay(notification_id).get() == "skipped"

    assert len(mail.outbox) == 1
    notice = Notification.objects.get(pk=notification_id)
    assert notice.status == Status.SENT and notice.attempts == 1 and notice.sent_at
    assert notice.subject == mail.outbox[0].subject
    assert notice.body_text == mail.outbox[0].body


def test_the_email_on_the_wire_is_text_and_html_with_a_boundary_of_its_own(order, buyer, seller):
    import email

    # given two notices sent
    record(order, "order.cancelled", notify=("buyer", "seller"), amount="59.900")
    dispatch()
    assert len(mail.outbox) == 2

    # when their messages are serialized as the SMTP backend does and parsed back
    wires = [m.message().as_bytes(linesep="\r\n") for m in mail.outbox]
    parsed = [email.message_from_bytes(wire) for wire in wires]

    # then each is multipart/alternative: the stored text, then the stored HTML
    boundaries = set()
    for message, wire in zip(parsed, wires, strict=True):
        notice = Notification.objects.get(email=message["To"])
        assert message.get_content_type() == "multipart/alternative"
        boundary = message.get_boundary()
        assert boundary.startswith("=_rp_") and wire.count(f"--{boundary}".encode()) == 3
        text, html = message.get_payload()
        assert text.get_content_type() == "text/plain"
        assert html.get_content_type() == "text/html"
        assert text.get_payload(decode=True).decode() == notice.body_text.replace("\n", "\r\n")
        assert html.get_payload(decode=True).decode().replace("\r\n", "\n") == notice.body_html
        boundaries.add(boundary)
    # and no two messages share a boundary
    assert len(boundaries) == 2


def test_an_event_fanned_out_again_creates_no_second_notice(order, seller):
    event = record(order, "refund.requested", notify=("seller",))
    dispatch()
    # as if a crashed dispatcher's claim were replayed
    Event.objects.filter(pk=event.pk).update(dispatched_at=None)

    assert notifications_fan_out() == []
    dispatch()

    assert Notification.objects.filter(event=event).count() == 1
    assert len(mail.outbox) == 1


def test_the_database_refuses_a_second_notice_of_one_event_to_one_person(order, seller):
    event = record(order, "refund.requested", notify=("seller",))
    notifications_fan_out()
    notice = Notification.objects.get()

    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            event=event,
            recipient=seller,
            email="other@example.com",
            role="seller",
            kind=event.kind,
            link=notice.link,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(
            event=event,
            recipient=None,
            email=seller.email,
            role="staff",
            kind=event.kind,
            link=notice.link,
        )


def test_a_staff_member_who_is_the_buyer_and_on_the_alert_list_gets_one_notice(
    order, buyer, settings
):
    buyer.is_staff = True
    buyer.save()
    settings.STAFF_ALERT_EMAILS = [buyer.email.upper(), OPS]
    record(order, "payout.overdue", notify=("buyer", "staff"), amount="59.900")

    dispatch()

    [message] = mails_to(buyer.email)
    assert "delayed" in message.subject  # the buyer's notice, not the staff alert
    assert len(mails_to(OPS)) == 1


def test_inactive_accounts_are_not_emailed(order, seller, staff):
    seller.is_active = False
    seller.save()
    staff.is_active = False
    staff.save()
    record(order, "refund.requested", notify=("seller", "staff"))

    dispatch()

    assert [m.to for m in mail.outbox] == [[OPS]]


def test_the_fan_out_loads_recipients_in_one_query_whatever_the_number_of_events(db, seller):
    def queries_for(n: int) -> int:
        orders = [OrderFactory(shop=seller.shops.get()) for _ in range(n)]
        for order in orders:
            record(order, "refund.requested", notify=("buyer", "seller", "staff"))
        with CaptureQueriesContext(connection) as ctx:
            ids = notifications_fan_out()
        assert len(ids) == n * 3  # buyer, seller and the ops address
        return len(ctx.captured_queries)

    assert queries_for(4) == queries_for(12)


# --- the hook: one dispatch per committed transaction ------------------------------------------


def test_a_transition_writing_several_events_queues_one_dispatch_after_commit(
    buyer, seller, monkeypatch, django_capture_on_commit_callbacks
):
    from tests.disputes.factories import open_dispute, rejected_case

    calls: list[int] = []
    monkeypatch.setattr(hooks, "events_written", [lambda: calls.append(1)])
    case = rejected_case(buyer=buyer, seller=seller)

    with django_capture_on_commit_callbacks(execute=True):
        # opening a dispute writes refund.escalated and dispute.opened in one transaction
        open_dispute(case=case)
        assert calls == []  # nothing before the commit

    assert (
        Event.objects.filter(
            case_id=case.public_id, kind__in=["refund.escalated", "dispute.opened"]
        ).count()
        == 2
    )
    assert calls == [1]


def test_a_rolled_back_transaction_queues_nothing_and_leaves_no_stale_flag(
    order, monkeypatch, django_capture_on_commit_callbacks
):
    calls: list[int] = []
    monkeypatch.setattr(hooks, "events_written", [lambda: calls.append(1)])

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            record(order, "refund.requested", notify=("seller",))
            raise RuntimeError("rolled back")
        assert calls == []
        record(order, "refund.requested", notify=("seller",))

    assert calls == [1]


def test_a_sweep_batch_queues_one_dispatch(
    order, buyer, monkeypatch, django_capture_on_commit_callbacks
):
    from kernel.sweeps import run_sweep
    from refunds.sweeps import transition_sweeps

    calls: list[int] = []
    monkeypatch.setattr(hooks, "events_written", [lambda: calls.append(1)])
    cases = [file_refund(OrderFactory(buyer=buyer, shop=order.shop)) for _ in range(3)]
    [auto_accept] = [s for s in transition_sweeps() if s.name == "auto_accept"]

    with django_capture_on_commit_callbacks(execute=True):
        moved = run_sweep(auto_accept, now=max(c.respond_by for c in cases) + timedelta(seconds=1))

    assert len(moved) == 3
    assert calls == [1]


# --- a failing mail server -------------------------------------------------------------------


@pytest.fixture
def retries_inline() -> Iterator[None]:
    """Eager tasks run their retries in line only when failures do not propagate."""
    from refundportal.celery import app

    saved = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    try:
        yield
    finally:
        app.conf.task_eager_propagates = saved


def test_a_failing_mail_server_is_retried_recorded_and_never_undoes_the_transition(
    order, seller, settings, django_capture_on_commit_callbacks, retries_inline
):
    settings.EMAIL_BACKEND = "tests.notifications.backends.FailingBackend"
    FailingBackend.calls = 0

    # when the buyer files a request and the commit hook dispatches (eagerly, here)
    with django_capture_on_commit_callbacks(execute=True):
        case = file_refund(order)

    # then the request stands
    assert RefundCase.objects.get(pk=case.pk).state == State.REQUESTED
    # and the notice was tried by the task and each of its retries, the failure recorded
    notice = Notification.objects.get(recipient=seller)
    assert notice.status == Status.FAILED
    assert notice.attempts == notification_deliver.max_retries + 1 == FailingBackend.calls
    assert notice.last_error.startswith("SMTPException: 451 4.3.0")
    assert notice.sent_at is None
    assert mail.outbox == []

    # when the server is back and the re-dispatch runs after the task's own retries
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notifications_redispatch()
    assert mail.outbox == []  # not while a retry of the task may still be scheduled
    with time_machine.travel(timezone.now() + timedelta(minutes=7), tick=False):
        notifications_redispatch()

    # then it is sent, once
    notice.refresh_from_db()
    assert notice.status == Status.SENT
    assert notice.attempts == notification_deliver.max_retries + 2
    assert len(mails_to(seller.email)) == 1


def test_the_deliver_task_retries_with_capped_exponential_backoff():
    assert notification_deliver.retry_backoff == 15
    assert notification_deliver.retry_backoff_max == 300
    assert notification_deliver.acks_late and notification_deliver.reject_on_worker_lost
    assert notification_deliver.time_limit and notification_deliver.soft_time_limit


def test_the_send_records_the_error_and_reraises_for_the_task(order, seller, settings):
    settings.EMAIL_BACKEND = "tests.notifications.backends.FailingBackend"
    record(order, "refund.requested", notify=("seller",))
    [notification_id] = notifications_fan_out()

    with pytest.raises(Exception, match="451"):
        notification_send(notification_id=notification_id)

    notice = Notification.objects.get(pk=notification_id)
    assert (notice.status, notice.attempts) == (Status.FAILED, 1)
    assert "451" in notice.last_error


def test_a_notice_at_its_last_attempt_is_left_for_staff(order, seller):
    record(order, "refund.requested", notify=("seller",))
    [notification_id] = notifications_fan_out()
    Notification.objects.filter(pk=notification_id).update(
        status=Status.FAILED, attempts=MAX_ATTEMPTS
    )

    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=False):
        assert services.notifications_due_for_redispatch() == []
        assert notification_send(notification_id=notification_id) == "skipped"

    notice = Notification.objects.get(pk=notification_id)
    assert services.notification_retry(notification=notice)
    assert notification_send(notification_id=notification_id) == "sent"


def test_a_notice_held_by_a_dead_worker_is_sent_once_its_claim_runs_out(order, seller):
    record(order, "refund.requested", notify=("seller",))
    [notification_id] = notifications_fan_out()
    # a worker claimed it and died before sending
    now = timezone.now()
    Notification.objects.filter(pk=notification_id).update(
        status=Status.SENDING, attempts=1, claimed_until=now + services.SEND_CLAIM
    )

    assert notification_send(notification_id=notification_id) == "skipped"
    assert services.notifications_due_for_redispatch() == []

    with time_machine.travel(now + services.SEND_CLAIM + timedelta(seconds=1), tick=False):
        assert services.notifications_due_for_redispatch() == [notification_id]
        notifications_redispatch()

    assert len(mails_to(seller.email)) == 1
    assert Notification.objects.get(pk=notification_id).status == Status.SENT


# --- an unreachable broker ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    """Points the Celery app at a port nobody listens on, with eager execution off, as a
    production web process sees a broker outage; `back()` restores the test configuration."""

    def __init__(self) -> None:
        from refundportal.celery import app

        self.app = app
        self.saved = (app.conf.task_always_eager, app.conf.broker_url)

    def _reset_pools(self) -> None:
        # Celery caches its connection pools; a new broker URL needs fresh ones (kombu keeps
        # each URL's pool in its own registry, so the old one is found again on the way back).
        self.app._pool = None
        self.app.amqp._producer_pool = None

    def down(self) -> None:
        self.app.conf.task_always_eager = False
        self.app.conf.broker_url = f"redis://127.0.0.1:{_closed_port()}/0"
        self._reset_pools()

    def back(self) -> None:
        self.app.conf.task_always_eager, self.app.conf.broker_url = self.saved
        self._reset_pools()


@pytest.fixture
def broker() -> Iterator[Broker]:
    controller = Broker()
    controller.down()
    try:
        yield controller
    finally:
        controller.back()


def test_a_notice_recorded_while_the_broker_is_down_goes_out_with_the_next_redispatch(
    order, seller, broker, django_capture_on_commit_callbacks, caplog
):
    # given the broker is unreachable when the buyer files a request
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        case = file_refund(order)

    # then the request stands, the hook only logged, and the event waits in the outbox
    assert RefundCase.objects.get(pk=case.pk).state == State.REQUESTED
    assert "could not queue the notification dispatch" in caplog.text
    assert Event.objects.filter(case_id=case.public_id, dispatched_at__isnull=True).exists()
    assert Notification.objects.count() == 0

    # when the broker is back and beat runs the re-dispatch
    broker.back()
    notifications_redispatch()

    # then the seller is told, once
    assert len(mails_to(seller.email)) == 1
    notifications_redispatch()
    assert len(mails_to(seller.email)) == 1


def test_notices_fanned_out_while_the_broker_is_down_stay_pending_until_the_redispatch(
    order, seller, broker, caplog
):
    record(order, "refund.requested", notify=("seller",))

    # the dispatcher fans out, but cannot queue the deliveries
    with caplog.at_level(logging.WARNING):
        assert notifications_dispatch() == 1
    notice = Notification.objects.get()
    assert notice.status == Status.PENDING
    assert "could not queue 1 notification(s)" in caplog.text

    broker.back()
    notifications_redispatch()  # too early: it may still be in flight
    assert mail.outbox == []
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        notifications_redispatch()

    assert len(mails_to(seller.email)) == 1


def test_the_hook_swallows_a_broker_error(monkeypatch, caplog):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.notifications_dispatch, "delay", refuse)

    with caplog.at_level(logging.WARNING):
        tasks.queue_dispatch()

    assert "re-dispatch will send it" in caplog.text


# --- concurrency (real threads, PostgreSQL row locks) ------------------------------------------


def in_threads(fn: Callable[[], Any], n: int = 2) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            services._drop_connection()
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_and_two_workers_at_once_send_each_notice_once(
    monkeypatch, buyer, seller, staff
):
    # the commit hook would dispatch each event as it is written; the threads do it here
    monkeypatch.setattr(hooks, "events_written", [])
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    Event.objects.bulk_create(
        Event(
            order=order,
            kind="refund.requested",
            created_at=timezone.now(),
            payload={
                "notify": {"buyer": buyer.pk, "seller": seller.pk},
                "order_number": order.number,
                "currency": "USD",
                "amount": "1.000",
            },
        )
        for _ in range(150)
    )

    def fan_out_until_done() -> list[int]:
        ids: list[int] = []
        while batch := notifications_fan_out(limit=20):
            ids.extend(batch)
        return ids

    first, second = in_threads(fan_out_until_done)

    assert not set(first) & set(second)
    assert len(first) + len(second) == 300 == Notification.objects.count()
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()

    every_id = sorted(first + second)
    outcomes = in_threads(lambda: [notification_send(notification_id=i) for i in every_id])

    sent = [o for run in outcomes for o in run if o == "sent"]
    assert len(sent) == 300 == len(mail.outbox)
    assert Notification.objects.filter(status=Status.SENT, attempts=1).count() == 300
