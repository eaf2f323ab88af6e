"""Idempotency-Key on every POST under /api/v1/ (docs/api.md, Idempotency; docs/architecture.md,
Idempotent writes)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.client import encode_multipart
from django.utils import timezone

from orders.models import IdempotencyKey, Message
from orders.services import idempotency_key_claim, idempotency_keys_expire
from refunds import services
from refunds.models import Evidence, RefundCase
from tests.conftest import requires_postgres
from tests.orders.factories import OrderFactory
from tests.refunds.factories import file_refund, png_bytes

FILING = "/api/v1/refunds/"


def filing(order, amount="20.00"):
    return {"order": order.number, "reason": "changed_mind", "amount": amount}


def post(client, path, body, key=None, **extra):
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(path, body, format="json", **extra)


def messages_url(case):
    return f"/api/v1/refunds/{case.public_id}/messages/"


def test_a_retry_replays_the_first_answer_and_files_nothing_more(api, buyer, order):
    # given a filing sent with a key
    client = api(buyer)
    first = post(client, FILING, filing(order), key="file-1")
    assert first.status_code == 201, first.json()

    # when the same request is retried with the same key
    again = post(client, FILING, filing(order), key="file-1")

    # then the answer is the first one, byte for byte, and there is still one case
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert RefundCase.objects.count() == 1


def test_the_same_json_in_another_key_order_and_spacing_is_the_same_request(api, buyer, order):
    client = api(buyer)
    body = filing(order)
    first = client.post(
        FILING, json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)

    again = client.post(
        FILING, reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content


def test_the_key_with_another_body_is_refused(api, buyer, order):
    client = api(buyer)
    assert post(client, FILING, filing(order), key="k").status_code == 201

    # when the key comes again with another amount
    reused = post(client, FILING, filing(order, amount="19.00"), key="k")

    # then 422 in the envelope, and nothing more was filed
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert RefundCase.objects.count() == 1


def test_the_key_on_another_path_is_refused(api, buyer, order):
    case = file_refund(order, amount="20.00")
    client = api(buyer)
    assert post(client, messages_url(case), {"body": "Hello"}, key="k").status_code == 201

    other = post(client, f"/api/v1/refunds/{case.public_id}/withdraw/", {"body": "Hello"}, key="k")

    assert other.status_code == 422
    assert RefundCase.objects.get().state == "requested"


def test_keys_are_per_account(api, buyer, other_buyer, seller):
    # given two buyers with an order each, who happen to draw the same key
    mine = OrderFactory(buyer=buyer, shop=seller.shops.get())
    theirs = OrderFactory(buyer=other_buyer, shop=seller.shops.get())

    first = post(api(buyer), FILING, filing(mine), key="same")
    second = post(api(other_buyer), FILING, filing(theirs), key="same")

    # then each request ran for its own account
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert RefundCase.objects.count() == 2


def test_without_the_header_every_request_runs(api, buyer, order):
    case = file_refund(order, amount="20.00")
    client = api(buyer)

    for _ in range(2):
        assert post(client, messages_url(case), {"body": "Hello"}).status_code == 201

    assert Message.objects.filter(body="Hello").count() == 2
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("k" * 256, "At most 255 characters."),
        ("a\tb", "Control characters are not allowed."),
        ("a\x7fb", "Control characters are not allowed."),
        ("", "Send a key of 1 to 255 characters, or leave the header out."),
    ],
)
def test_a_bad_key_is_a_400_naming_the_header(api, buyer, order, key, why):
    response = post(api(buyer), FILING, filing(order), key=key)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"Idempotency-Key": [why]}
    assert not RefundCase.objects.exists()


def test_a_key_of_255_characters_is_accepted(api, buyer, order):
    assert post(api(buyer), FILING, filing(order), key="k" * 255).status_code == 201


def test_a_validation_error_is_kept_and_replayed(api, buyer, order):
    client = api(buyer)
    first = post(client, FILING, filing(order, amount="20.001"), key="k")

    again = post(client, FILING, filing(order, amount="20.001"), key="k")

    assert first.status_code == 400
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_a_refusal_before_the_action_is_not_kept(api, seller, order):
    # given the seller, who may not file, sends a filing with a key
    client = api(seller)
    refused = post(client, FILING, filing(order), key="k")

    # then the 4xx about who asks is not kept: the key stays free
    assert refused.status_code == 403
    assert not IdempotencyKey.objects.exists()


def test_after_24_hours_the_key_is_new_again(api, buyer, order):
    case = file_refund(order, amount="20.00")
    client = api(buyer)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert post(client, messages_url(case), {"body": "Hi"}, key="k").status_code == 201

    # one second before 24 h: replayed
    with time_machine.travel(start + timedelta(hours=24) - timedelta(seconds=1), tick=False):
        replay = post(client, messages_url(case), {"body": "Hi"}, key="k")
    assert replay["Idempotent-Replayed"] == "true"
    assert Message.objects.filter(body="Hi").count() == 1

    # one second after: runs again, even with another body
    with time_machine.travel(start + timedelta(hours=24) + timedelta(seconds=1), tick=False):
        assert post(client, messages_url(case), {"body": "Hi"}, key="k").status_code == 201
        assert post(client, messages_url(case), {"body": "Ho"}, key="k").status_code == 422
    assert Message.objects.filter(body="Hi").count() == 2


def test_a_failure_rolls_its_writes_back_and_frees_the_key(api, buyer, order, monkeypatch):
    # given a message service that writes, then fails
    case = file_refund(order, amount="20.00")
    post_message = services.refund_message_post

    def write_then_fail(**kwargs):
        post_message(**kwargs)
        raise RuntimeError("crash after the write")

    monkeypatch.setattr(services, "refund_message_post", write_then_fail)
    client = api(buyer)
    client.raise_request_exception = False

    failed = post(client, messages_url(case), {"body": "Hi"}, key="k")

    # then nothing of it committed and the retry runs it
    assert failed.status_code == 500
    assert not Message.objects.filter(body="Hi").exists()
    monkeypatch.setattr(services, "refund_message_post", post_message)
    assert post(client, messages_url(case), {"body": "Hi"}, key="k").status_code == 201
    assert Message.objects.filter(body="Hi").count() == 1


def test_a_crashed_requests_claim_expires_and_the_retry_runs(api, buyer, order):
    # given a request whose process died while it held the key (its claim is all that is left)
    from rest_framework.test import APIRequestFactory

    from api.idempotency import request_fingerprint

    case = file_refund(order, amount="20.00")
    request = APIRequestFactory().post(messages_url(case), {"body": "Hi"}, format="json")
    start = timezone.now()
    idempotency_key_claim(user=buyer, key="k", fingerprint=request_fingerprint(request), now=start)
    client = api(buyer)

    # when the client retries at once: the key is in use
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        busy = post(client, messages_url(case), {"body": "Hi"}, key="k")
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"

    # and once the claim expired, the retry runs (the crashed request committed nothing)
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert post(client, messages_url(case), {"body": "Hi"}, key="k").status_code == 201
    assert Message.objects.filter(body="Hi").count() == 1


def test_an_upload_retried_with_a_new_boundary_is_replayed(api, buyer, order):
    case = file_refund(order, amount="20.00", return_item=True)
    client = api(buyer)
    url = f"/api/v1/refunds/{case.public_id}/evidence/"
    image = png_bytes()

    def upload(boundary):
        from django.core.files.uploadedfile import SimpleUploadedFile

        body = encode_multipart(
            boundary, {"file": SimpleUploadedFile("a.png", image, "image/png"), "kind": "photo"}
        )
        return client.generic(
            "POST",
            url,
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
            HTTP_IDEMPOTENCY_KEY="upload-1",
        )

    first = upload("first-boundary-1234")
    again = upload("another-boundary-98765")

    assert first.status_code == 201, first.json()
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert Evidence.objects.count() == 1


def test_old_keys_are_cleaned_up(buyer, order):
    now = timezone.now()
    old = idempotency_key_claim(
        user=buyer, key="old", fingerprint="a", now=now - timedelta(hours=25)
    )
    IdempotencyKey.objects.filter(pk=old.key_id).update(locked_until=None, status_code=201)
    idempotency_key_claim(user=buyer, key="new", fingerprint="b", now=now)

    assert idempotency_keys_expire(now=now) == 1

    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_the_schema_documents_the_header_on_every_post(api, staff):
    schema = api(staff).get("/api/schema/?format=json").json()

    posts = [
        (path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method == "post"
    ]
    assert posts
    for path, operation in posts:
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        assert "Idempotency-Key" in names, path
        assert {"409", "422"} <= set(operation["responses"]), path


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_runs_is_refused(api, buyer, order, monkeypatch):
    # given a first request held inside the message service
    case = file_refund(order, amount="20.00")
    entered, release = threading.Event(), threading.Event()
    post_message = services.refund_message_post

    def held(**kwargs):
        entered.set()
        release.wait(timeout=30)
        return post_message(**kwargs)

    monkeypatch.setattr(services, "refund_message_post", held)
    answers = {}

    def first():
        try:
            answers["first"] = post(api(buyer), messages_url(case), {"body": "Hi"}, key="k")
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(timeout=30)

    # when the retry arrives meanwhile
    try:
        busy = post(api(buyer), messages_url(case), {"body": "Hi"}, key="k")
    finally:
        release.set()
        thread.join(timeout=30)

    # then it is 409 and the first one ran once; afterwards the retry replays it
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert answers["first"].status_code == 201
    replay = post(api(buyer), messages_url(case), {"body": "Hi"}, key="k")
    assert replay.content == answers["first"].content
    assert Message.objects.filter(body="Hi").count() == 1


def test_a_request_that_lost_its_claim_commits_nothing(api, buyer, order, monkeypatch):
    # given a request that outlives its claim: a retry takes the key over while it runs
    case = file_refund(order, amount="20.00")
    post_message = services.refund_message_post

    def overtaken(**kwargs):
        message = post_message(**kwargs)
        IdempotencyKey.objects.update(locked_until=timezone.now() + timedelta(minutes=5))
        return message

    monkeypatch.setattr(services, "refund_message_post", overtaken)

    answer = post(api(buyer), messages_url(case), {"body": "Hi"}, key="k")

    # then its writes are rolled back and it says the key is another request's now
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "idempotency_key_in_use"
    assert not Message.objects.filter(body="Hi").exists()
