"""Refund drafts: step 3 checks a draft with the filing service's own rules, without a write or a
row lock; step 4 files it and forgets it; abandoned draft files go by the periodic task, never
inside a request."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kernel.errors import DomainError
from orders.models import Order
from payouts.services import order_cancel_by_buyer
from refundportal.celery import app
from refunds.drafts import (
    DRAFT_FILE_MAX_AGE,
    RefundDraft,
    refund_draft_add_files,
    refund_draft_validate,
    refund_drafts_cleanup,
)
from refunds.models import RefundCase
from refunds.services import ItemRequest, refund_request
from tests.orders.factories import OrderFactory
from tests.portal.conftest import client_for, delivered_order, file_case, png_upload
from tests.portal.helpers import visible_text

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
# Any row lock PostgreSQL takes: FOR UPDATE, FOR NO KEY UPDATE (the order lock), FOR SHARE...
ROW_LOCK = re.compile(r"\bFOR (NO KEY )?(UPDATE|KEY SHARE|SHARE)\b", re.IGNORECASE)


def at_step_3(buyer: Any, seller: Any, reason: str = "damaged") -> tuple[Any, Any, str]:
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    assert client.post(f"/orders/{order.number}/refund/", {"reason": reason}).status_code == 302
    return order, client, f"/orders/{order.number}/refund/details/"


def draft_files() -> list[Path]:
    root = Path(settings.PRIVATE_STORAGE_ROOT) / "drafts"
    return sorted(root.iterdir()) if root.is_dir() else []


# --- step 3: the filing rules, without the filing --------------------------------------------


@pytest.mark.parametrize(
    ("amount", "status"), [("20.00", 302), ("75.00", 400)], ids=["passes", "refused"]
)
def test_step_3_checks_the_draft_without_a_write_or_a_row_lock(buyer, seller, amount, status):
    # given a buyer who chose a reason
    _, client, url = at_step_3(buyer, seller)

    # when they send the details
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(url, {"amount": amount, "return_item": "no"})

    # then the check ran (and decided), took no row lock, and wrote nothing but the session
    assert response.status_code == status
    statements = [q["sql"] for q in ctx.captured_queries]
    assert not [sql for sql in statements if ROW_LOCK.search(sql)]
    assert [sql for sql in statements if WRITE.match(sql) and "django_session" not in sql] == []
    assert not RefundCase.objects.exists()


def _not_delivered(buyer: Any, seller: Any) -> Order:
    return OrderFactory(buyer=buyer, shop=seller.shops.get())


def _delivered_long_ago(buyer: Any, seller: Any) -> Order:
    return delivered_order(buyer, seller, days_ago=20)


def _with_open_case(buyer: Any, seller: Any) -> Order:
    order = delivered_order(buyer, seller)
    file_case(order, buyer)
    return order


def _cancelled(buyer: Any, seller: Any) -> Order:
    order = _not_delivered(buyer, seller)
    order_cancel_by_buyer(order=order, actor=buyer)
    return order


# Each way a draft can be wrong: what the draft says differently, and the order it is for.
BAD_DRAFTS: dict[str, tuple[dict[str, Any], Callable[[Any, Any], Order]]] = {
    "unknown reason": ({"reason": "bored"}, delivered_order),
    "window not open yet": ({}, _not_delivered),
    "window closed": ({}, _delivered_long_ago),
    "no amount": ({"amount": ""}, delivered_order),
    "too many decimals": ({"amount": "1.234"}, delivered_order),
    "more than refundable": ({"amount": "75.00"}, delivered_order),
    "not an item of the order": ({"items": {"999999": 1}}, delivered_order),
    "more items than ordered": ({"items": {"SKU-1": 3}}, delivered_order),
    "an open case already": ({}, _with_open_case),
    "a cancelled order": ({}, _cancelled),
}


@pytest.mark.parametrize("name", sorted(BAD_DRAFTS))
def test_a_draft_is_refused_with_exactly_the_error_filing_it_raises(name, buyer, seller):
    # given a draft that is wrong in one way
    changes, make_order = BAD_DRAFTS[name]
    order = Order.objects.select_related("shop", "buyer").get(pk=make_order(buyer, seller).pk)
    draft = replace(RefundDraft(reason="damaged", amount="20.00"), **changes)
    skus = dict(order.items.values_list("sku", "pk"))
    draft.items = {str(skus.get(k, k)): v for k, v in draft.items.items()}
    now = timezone.now()

    # when step 3 checks the draft, and when the service is asked to file it
    with pytest.raises(DomainError) as checked:
        refund_draft_validate(draft=draft, order=order, buyer=buyer, now=now)
    with pytest.raises(DomainError) as filed:
        refund_request(
            order=order,
            buyer=buyer,
            reason=draft.reason,
            amount=draft.amount or None,
            items=[ItemRequest(order_item_id=int(k), quantity=v) for k, v in draft.items.items()],
            now=now,
        )

    # then both say the same thing in the same words
    def said(exc: DomainError) -> tuple[Any, ...]:
        return type(exc), exc.code, exc.message, exc.fields

    assert said(checked.value) == said(filed.value)


def test_a_draft_of_someone_elses_order_is_refused_like_filing_it(buyer, other_buyer, seller):
    order = delivered_order(buyer, seller)
    draft = RefundDraft(reason="damaged", amount="20.00")
    with pytest.raises(DomainError) as checked:
        refund_draft_validate(draft=draft, order=order, buyer=other_buyer, now=timezone.now())
    with pytest.raises(DomainError) as filed:
        refund_request(order=order, buyer=other_buyer, reason="damaged", amount="20.00")
    assert (checked.value.code, checked.value.message) == (filed.value.code, filed.value.message)


def test_step_3_shows_the_services_message_next_to_the_amount(buyer, seller):
    # given a buyer at step 3 who asks for more than the order can refund
    order, client, url = at_step_3(buyer, seller)
    with pytest.raises(DomainError) as service:
        refund_request(order=order, buyer=buyer, reason="damaged", amount="75.00")

    # when they send it
    response = client.post(url, {"amount": "75.00", "return_item": "no"})

    # then the page says what the service says, and step 4 stays closed
    assert response.status_code == 400
    assert service.value.message in visible_text(response)
    assert client.get(f"/orders/{order.number}/refund/review/")["Location"] == url


# --- step 4: filing the draft forgets it -----------------------------------------------------


def test_filing_attaches_the_drafts_files_and_forgets_the_draft(buyer, seller):
    # given a draft with a file
    order, client, url = at_step_3(buyer, seller)
    response = client.post(
        url, {"amount": "20.00", "return_item": "no", "evidence": [png_upload("crack.png")]}
    )
    assert response.status_code == 302 and len(draft_files()) == 1

    # when it is filed
    client.post(f"/orders/{order.number}/refund/review/")

    # then the case has the file, the waiting copy is gone, and a new request starts empty
    case = RefundCase.objects.get()
    assert [e.original_name for e in case.evidence.all()] == ["crack.png"]
    assert draft_files() == []
    assert f"refund_draft:{order.number}" not in client.session


# --- abandoned drafts: the periodic task, not the request ------------------------------------


def test_step_3_leaves_old_draft_files_to_the_periodic_task(buyer, seller):
    # given a file of a draft abandoned two days ago
    _, client, url = at_step_3(buyer, seller)
    stale = RefundDraft()
    refund_draft_add_files(draft=stale, uploads=[png_upload("old.png")])
    (old,) = draft_files()
    two_days_ago = (timezone.now() - timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))

    # when another buyer stashes a file in step 3
    client.post(url, {"amount": "20.00", "return_item": "no", "evidence": [png_upload()]})

    # then the request did no housekeeping; the task does it
    assert old.exists() and len(draft_files()) == 2
    assert refund_drafts_cleanup() == 1
    assert not old.exists() and len(draft_files()) == 1


def test_a_draft_file_is_kept_for_its_whole_day_and_deleted_after_it():
    # given a file stashed for a draft
    refund_draft_add_files(draft=RefundDraft(), uploads=[png_upload()])
    (path,) = draft_files()
    stashed = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)

    # when the task runs one second before its day is over, then one second after
    with time_machine.travel(stashed + DRAFT_FILE_MAX_AGE - SECOND, tick=False):
        assert refund_drafts_cleanup() == 0
    assert path.exists()
    with time_machine.travel(stashed + DRAFT_FILE_MAX_AGE + SECOND, tick=False):
        assert refund_drafts_cleanup() == 1

    # then it is gone, and a second run (or one at the same time) finds nothing to do
    assert not path.exists()
    assert refund_drafts_cleanup(now=stashed + 2 * DRAFT_FILE_MAX_AGE) == 0


def test_beat_runs_the_cleanup_task():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "refunds.tasks.refund_drafts_cleanup" in scheduled
    assert "refunds.tasks.refund_drafts_cleanup" in app.tasks
