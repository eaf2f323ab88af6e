"""`Idempotency-Key` on every POST under /api/v1/ (docs/api.md, Idempotency; docs/architecture.md,
Idempotent writes).

Without the header a request is served as it always was. With it, the key is claimed for the
authenticated account before the view runs; the view then runs inside one transaction together
with the row that keeps its answer, so its writes and the stored answer commit together or not
at all. A retry with the same key and the same request (a hash of method, path and canonical body)
is answered from that row without running the view; another request with the key is 422, and a
retry while the first still runs is 409.

A middleware rather than a view base class, so every POST the URL conf routes under /api/v1/ is
covered, those added later included.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from api.errors import envelope_response
from kernel.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from orders.models import IdempotencyKey, User
from orders.services import (
    IdempotencyClaim,
    idempotency_key_claim,
    idempotency_key_release,
    idempotency_key_store,
)

HEADER = "Idempotency-Key"
META_KEY = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
PREFIX = "/api/v1/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Answers about who asks or when, not about what was asked: the view refused before acting, and a
# retry may be answered otherwise once the account's rights or write budget allow. A 5xx is not
# kept either: its writes are rolled back, so a retry runs the request again.
NOT_KEPT = frozenset({401, 403, 429})
# The answer's headers a replay repeats besides its content type.
KEPT_HEADERS = ("Location",)
_CHUNK = 64 * 1024


def idempotency_key_refusal(value: str) -> str | None:
    """Why an `Idempotency-Key` header is refused (400), or None."""
    if not value:
        return "Send a key of 1 to 255 characters, or leave the header out."
    if len(value) > MAX_KEY_LENGTH:
        return f"At most {MAX_KEY_LENGTH} characters."
    if _CONTROL.search(value):
        return "Control characters are not allowed."
    return None


class _Number(str):
    """A JSON number kept as the text it was written with."""


def _canonical_json(value: Any) -> str:
    # Keys sorted and spacing dropped, numbers as written: the same request serialized by another
    # client library has the same fingerprint; a changed value, even 59.9 for 59.90, does not.
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{json.dumps(k)}:{_canonical_json(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical_json(v) for v in value) + "]"
    if isinstance(value, _Number):
        return str.__str__(value)
    return json.dumps(value)


def _without(chunks: Iterator[bytes], needle: bytes, replacement: bytes) -> Iterator[bytes]:
    """The stream with every `needle` replaced, across chunk edges."""
    carry = b""
    keep = len(needle) - 1
    for chunk in chunks:
        parts = (carry + chunk).split(needle)
        head, carry = parts[:-1], parts[-1]
        if head:
            yield replacement.join(head) + replacement
        if len(carry) > keep:
            yield carry[: len(carry) - keep]
            carry = carry[len(carry) - keep :]
    yield carry


def _spool_body(request: HttpRequest) -> Iterator[bytes]:
    """Read an upload's body once into a spooled file (in memory up to
    FILE_UPLOAD_MAX_MEMORY_SIZE, on disk beyond) that the view then parses as it would the
    socket."""
    stream = request._stream  # type: ignore[attr-defined]
    # Not closed here: it becomes the request's stream, read by the view's parser.
    spool = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
    while chunk := stream.read(_CHUNK):
        spool.write(chunk)
    spool.seek(0)
    request._stream = spool  # type: ignore[assignment]
    while chunk := spool.read(_CHUNK):
        yield chunk
    spool.seek(0)


def request_fingerprint(request: HttpRequest) -> str:
    """SHA-256 of the method, the path with its query and the canonical body."""
    digest = hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n".encode())
    if request.content_type == "multipart/form-data":
        # A client retrying an upload draws a new boundary; the parts are what was asked.
        boundary = (request.content_params or {}).get("boundary", "").encode("latin-1")
        chunks = _spool_body(request)
        if boundary:
            chunks = _without(chunks, b"--" + boundary, b"--boundary")
        digest.update(b"multipart\n")
        for chunk in chunks:
            digest.update(chunk)
        return digest.hexdigest()
    body = request.body
    try:
        parsed = json.loads(body, parse_float=_Number, parse_int=_Number, parse_constant=_Number)
    except ValueError:
        digest.update(b"raw\n" + body)
    else:
        digest.update(b"json\n" + _canonical_json(parsed).encode())
    return digest.hexdigest()


def _account(request: HttpRequest, view_func: Any) -> User | None:
    """The account the view will see, by the view's own authenticators; None when it will refuse
    the request (401, or 403 for a session without its CSRF token)."""
    view_class = getattr(view_func, "cls", None)
    if view_class is None:
        return None
    django_user = request.__dict__.get("user")
    try:
        user = Request(
            request, authenticators=[auth() for auth in view_class.authentication_classes]
        ).user
    except APIException:
        return None
    finally:
        # DRF writes what it found onto the request; the view authenticates afresh.
        if django_user is not None:
            request.user = django_user
    return user if user.is_authenticated else None


def _replay(row: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(bytes(row.body), status=row.status_code, content_type=row.content_type)
    for name, value in row.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _kept(response: HttpResponseBase) -> bool:
    status = response.status_code
    return not response.streaming and status < 500 and status not in NOT_KEPT


class IdempotencyMiddleware:
    """Last in MIDDLEWARE: its `process_view` runs after the hostile-request checks (413) and the
    session and account middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        key = request.META.get(META_KEY)
        if key is None or request.method != "POST" or not request.path.startswith(PREFIX):
            return None
        if refusal := idempotency_key_refusal(key):
            return envelope_response(
                "validation_error", f"{HEADER}: {refusal}", 400, {HEADER: [refusal]}
            )
        fingerprint = request_fingerprint(request)
        user = _account(request, view_func)
        if user is None:
            return None  # the view refuses it; nobody's key is claimed
        try:
            outcome = idempotency_key_claim(
                user=user, key=key, fingerprint=fingerprint, now=timezone.now()
            )
        except (IdempotencyKeyInUse, IdempotencyKeyReused) as exc:
            return envelope_response(exc.code, exc.message, exc.status_code)
        if isinstance(outcome, IdempotencyKey):
            return _replay(outcome)
        return self._run(outcome, request, view_func, view_args, view_kwargs)

    def _run(
        self,
        claim: IdempotencyClaim,
        request: HttpRequest,
        view_func: Any,
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponseBase:
        lost = False
        try:
            with transaction.atomic():
                response = view_func(request, *view_args, **view_kwargs)
                render = getattr(response, "render", None)
                if callable(render):
                    response = render()
                if _kept(response):
                    kept = idempotency_key_store(
                        claim=claim,
                        status_code=response.status_code,
                        content_type=response.get("Content-Type", ""),
                        headers={h: response[h] for h in KEPT_HEADERS if h in response},
                        body=response.content,  # type: ignore[attr-defined]
                    )
                    if not kept:
                        # The claim outlived IDEMPOTENCY_CLAIM and a retry holds the key now:
                        # only one of the two may commit its writes.
                        lost = True
                        transaction.set_rollback(True)
                elif response.status_code >= 500:
                    transaction.set_rollback(True)
        except BaseException:
            idempotency_key_release(claim=claim)
            raise
        if lost:
            exc = IdempotencyKeyInUse(
                "Another request with this Idempotency-Key took it over; nothing was done."
            )
            return envelope_response(exc.code, exc.message, exc.status_code)
        if not _kept(response):
            idempotency_key_release(claim=claim)
        return response
