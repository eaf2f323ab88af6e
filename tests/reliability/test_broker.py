"""Against a REAL broker and a REAL worker: Redis goes away, a worker is killed mid-payout.

Each test starts its own `redis-server` on a free port (never the shared one on 6379;
docs/architecture.md, Tests) and its own `celery -A refundportal worker --pool=solo` subprocesses,
pointed at the test database (`transactional_db`: what the test commits, the worker sees, and the
other way round), and stops them itself. Every wait has a timeout; the worker's log is shown when
one runs out.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from notifications.models import Notification
from notifications.models import Status as NoticeStatus
from notifications.tasks import notifications_redispatch
from orders.models import Event
from payouts.gateway import FakeGateway
from payouts.models import GatewayRefund, Payout, PayoutStatus
from payouts.tasks import payouts_redispatch
from refunds.models import RefundCase, State
from refunds.tasks import refund_payouts_redispatch
from tests.conftest import api_client_for, requires_postgres
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund

from .helpers import assert_paid_once
from .test_faults import broker_at

pytestmark = [
    requires_postgres,
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

BASE_DIR = Path(settings.BASE_DIR)
# Short, for these tests only: a message a dead worker held is handed out again after it.
VISIBILITY_TIMEOUT = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, log: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def stop(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM) -> None:
    """Signal the process group this test started (by its id), then make sure it is gone."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def pong() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(pong, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Worker:
    """`celery -A refundportal worker --pool=solo`, on the test database and this Redis."""

    def __init__(self, name: str, redis: Redis, workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"worker-{name}.log"
        db = settings.DATABASES["default"]
        url = (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "DJANGO_SETTINGS_MODULE": "refundportal.settings.base",
            "DATABASE_URL": url,
            "REDIS_URL": redis.url,
            "PAYMENT_GATEWAY": "fake",
            "FAKE_GATEWAY_MODE": "succeed",
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "MEDIA_ROOT": str(workdir / "media"),
            "LOG_LEVEL": "INFO",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "refundportal",
                    "worker",
                    "--pool=solo",
                    # The payout queue too: one worker stands in for both of production's.
                    "--queues=celery,payouts",
                    "--loglevel=INFO",
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                    "-n",
                    f"{self.name}@%h",
                ],
                cwd=BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: " ready." in self.log.read_text(),
            timeout=40,
            what=f"worker {self.name} to be ready",
            log=self.log,
        )

    def kill(self) -> None:
        """SIGKILL: the process dies at once, acknowledging nothing (a crashed machine)."""
        assert self.process is not None
        stop(self.process, sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@pytest.fixture
def services_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def redis(transactional_db, services_dir) -> Iterator[Redis]:
    server = Redis(services_dir / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def workers(transactional_db, redis, services_dir) -> Iterator[Callable[[str], Worker]]:
    """Start workers on demand; every one is stopped before the test database is flushed."""
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(name, redis, services_dir)
        started.append(worker)
        worker.start()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
        connection.close()  # the flush must not wait on a session a worker left behind


def accept(case: RefundCase, seller: Any) -> int:
    url = reverse("api:refund-accept", kwargs={"public_id": case.public_id})
    return api_client_for(seller).post(url, {}, format="json").status_code


def test_a_worker_killed_mid_payout_pays_once_after_redelivery(
    buyer, seller, redis, workers, services_dir
):
    # given Redis and a worker; the gateway of this order takes its time after refunding
    redis.start()
    first = workers("first")
    order = OrderFactory(buyer=buyer, shop=seller.shops.get(), payment_reference="slow-ch_kill")
    case = file_refund(order, amount="59.90")

    with broker_at(redis.url):
        # when the seller accepts, and the worker dies while the gateway call is in flight
        assert accept(case, seller) == 200
        wait_for(GatewayRefund.objects.exists, timeout=30, what="the gateway refund", log=first.log)
        first.kill()
        # The worker took the message before it called the gateway, so before now.
        taken_by = time.monotonic()
        payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
        assert payout.status == PayoutStatus.PENDING, "the worker finished before it was killed"
        assert payout.claimed_until is not None and payout.claimed_until > timezone.now()

        # and its claim on the payout has run out (5 min in life; moved, not waited for)
        Payout.objects.filter(pk=payout.pk).update(
            claimed_until=timezone.now() - timedelta(seconds=1)
        )
        # and the unacknowledged message is visible again (acks_late + visibility timeout)
        time.sleep(max(0.0, taken_by + VISIBILITY_TIMEOUT + 1 - time.monotonic()))
        second = workers("second")

        # then the redelivered message asked the gateway again, with the same key
        wait_for(
            lambda: Payout.objects.filter(pk=payout.pk, status=PayoutStatus.SUCCEEDED).exists(),
            timeout=FakeGateway.SLOW_SECONDS + 20,
            what="the payout to succeed",
            log=second.log,
        )

    refund = GatewayRefund.objects.get()
    assert (refund.idempotency_key, refund.calls) == (f"refund:{case.public_id}", 2)
    assert Payout.objects.get(pk=payout.pk).attempts == 2
    assert_paid_once(order, key=f"refund:{case.public_id}", amount="59.90")
    assert RefundCase.objects.get(pk=case.pk).state == State.REFUNDED


def test_with_redis_down_a_transition_commits_and_goes_out_once_redis_is_back(
    buyer, seller, redis, workers
):
    # given a requested case, and Redis not running
    order = OrderFactory(buyer=buyer, shop=seller.shops.get())
    case = file_refund(order, amount="59.90")
    Event.objects.update(dispatched_at=timezone.now())  # what came before is not under test
    Notification.objects.all().delete()

    with broker_at(redis.url):
        # when the seller accepts while Redis is unreachable
        assert accept(case, seller) == 200

        # then the transition committed; its payout and notices wait in the database
        assert RefundCase.objects.get(pk=case.pk).state == State.REFUND_PENDING
        payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
        assert (payout.status, payout.attempts) == (PayoutStatus.PENDING, 0)
        assert Event.objects.filter(dispatched_at__isnull=True).exists()

        # when Redis is back, a worker runs, and beat queues the re-dispatchers
        redis.start()
        worker = workers("after-outage")
        for task in (refund_payouts_redispatch, payouts_redispatch, notifications_redispatch):
            task.delay()

        # then the refund is paid once and every notice of the transition is sent once
        wait_for(
            lambda: RefundCase.objects.filter(pk=case.pk, state=State.REFUNDED).exists(),
            timeout=40,
            what="the refund",
            log=worker.log,
        )
        notifications_redispatch.delay()  # the payout's own notices, like beat a minute later

        def all_sent() -> bool:
            notices = Notification.objects.all()
            return (
                not Event.objects.filter(dispatched_at__isnull=True).exists()
                and notices.exists()
                and not notices.exclude(status=NoticeStatus.SENT).exists()
            )

        wait_for(all_sent, timeout=40, what="every notice to be sent", log=worker.log)

    assert_paid_once(order, key=f"refund:{case.public_id}", amount="59.90")
    assert GatewayRefund.objects.get().calls == 1
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}
    kinds = set(Notification.objects.values_list("kind", flat=True))
    assert {"refund.accepted", "payout.succeeded"} <= kinds, kinds
