"""A local HTTP server that speaks Stripe's wire format for `POST /v1/refunds`, for tests that
drive the real `stripe` client (docs/rules.md, Payouts).

Requests are form-encoded with `Authorization: Bearer <key>` and an `Idempotency-Key` header, as
the client sends them; answers are JSON shaped like Stripe's Refund object and error object. The
server keeps its own ledger of the refunds it made: tests judge "paid once" there, not by our
payout rows.

Like Stripe, a key's first answer is replayed for later requests with the same key (with
`Idempotent-Replayed: true`), and the same key with other parameters is a 400
`idempotency_error`. Answers that did not run the request (429, 5xx, a refused key) are not
saved, so a retry with the same key runs it then.

What the next requests meet is scripted with `StripeServer.answer(...)`, one behaviour a
request, in order; with none scripted a refund succeeds. Behaviours:
- "succeeded", "pending", "requires_action": a refund is made with that status;
- "failed:<failure_reason>", "canceled": a refund is made and at once failed or canceled;
- 402: a card error; "400:<code>": an invalid request error with that code
  (charge_already_refunded, amount_too_large, …); 401: the key is refused; 429; 500, 503;
- "drop": the refund IS made, then the connection is closed without an answer;
- "hang:<seconds>": the refund IS made, then the answer comes after that many seconds.

Every request and answer is checked against Stripe's own schemas (tests/payouts/stripe_openapi);
what disagrees is recorded in `violations`, and the `stripe_server` fixture fails the test.
`latency` (seconds) delays every answer, as the network and Stripe's own work would (0.3–1 s for
a refund): each connection has its own thread, so concurrent requests wait side by side.

`GET /v1/refunds?payment_intent=…` (or `charge=…`) lists a payment's refunds, newest first.
`forget_keys()` is Stripe forgetting idempotency keys after 24 hours.

Webhooks: `event(type, obj)` builds an Event object as Stripe sends it, and
`signature_header(payload, secret, timestamp)` signs a body as Stripe does
(`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of "t.payload" with the endpoint's `whsec_` secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.payouts.stripe_openapi import validate_event, validate_request, validate_response

# The API version the events say they were rendered with (the client's pinned one).
STRIPE_API_VERSION = "2026-10-28.endive"


def signature_header(payload: bytes | str, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe sends with a webhook body."""
    body = payload.decode() if isinstance(payload, bytes) else payload
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class LedgerRefund:
    id: str
    idempotency_key: str
    amount: int
    currency: str
    payment_intent: str | None
    charge: str | None
    metadata: dict[str, str]
    status: str
    failure_reason: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Saved:
    params: dict[str, str]
    status: int
    body: dict[str, Any]


@dataclass
class StripeServer:
    """The server's state: its ledger, the saved answers per key, the requests it saw."""

    ledger: list[LedgerRefund] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    valid_keys: set[str] = field(default_factory=set)
    url: str = ""
    violations: list[str] = field(default_factory=list)
    latency: float = 0.0
    _script: list[Any] = field(default_factory=list)
    _saved: dict[str, Saved] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *behaviours: Any) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def _next(self) -> Any:
        with self._lock:
            return self._script.pop(0) if self._script else "succeeded"

    # --- the Refund object and the error object, as Stripe writes them --------------------------

    def _refund_object(self, refund: LedgerRefund) -> dict[str, Any]:
        return {
            "id": refund.id,
            "object": "refund",
            "amount": refund.amount,
            "balance_transaction": None,
            "charge": refund.charge or f"ch_{secrets.token_hex(8)}",
            "created": refund.created,
            "currency": refund.currency,
            "destination_details": None,
            "metadata": refund.metadata,
            "payment_intent": refund.payment_intent,
            "reason": None,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": refund.status,
            "transfer_reversal": None,
            # Stripe sends failure_reason only on a failed refund: its schema has no null.
            **({"failure_reason": refund.failure_reason} if refund.failure_reason else {}),
        }

    @staticmethod
    def _error(kind: str, message: str, **more: Any) -> dict[str, Any]:
        return {"error": {"type": kind, "message": message, **more}}

    # --- one request --------------------------------------------------------------------------

    def handle(
        self, authorization: str, key: str | None, params: dict[str, str]
    ) -> tuple[int, dict[str, Any], str]:
        """(status, body, how): how is "answer", "drop" or "hang:<s>"."""
        self.requests.append({"idempotency_key": key, "params": params})
        api_key = authorization.removeprefix("Bearer ").strip()
        behaviour = self._next()
        if api_key not in self.valid_keys or behaviour == 401:
            return 401, self._error("invalid_request_error", "Invalid API Key provided."), "answer"
        if key is not None:
            with self._lock:
                saved = self._saved.get(key)
            if saved is not None:
                if saved.params != params:
                    return (
                        400,
                        self._error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        ),
                        "answer",
                    )
                return saved.status, saved.body, "replay"
        if behaviour == 429:
            # Stripe's error types have no rate-limit type: a 429 is an invalid request error
            # with the code `rate_limit`.
            message = "Too many requests hit the API too quickly."
            error = self._error("invalid_request_error", message, code="rate_limit")
            return 429, error, "answer"
        if behaviour in (500, 503):
            return behaviour, self._error("api_error", "Try again."), "answer"
        status, body = self._run(key, params, behaviour)
        if key is not None:
            with self._lock:
                self._saved[key] = Saved(params, status, body)
        broken = isinstance(behaviour, str) and behaviour.startswith(("drop", "hang"))
        how = behaviour if broken else "answer"
        return status, body, how

    def _run(self, key: str | None, params: dict[str, str], behaviour: Any) -> tuple[int, dict]:
        if behaviour == 402:
            return 402, self._error(
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code="generic_decline",
            )
        if isinstance(behaviour, str) and behaviour.startswith("400:"):
            code = behaviour.removeprefix("400:")
            param = "amount" if code == "amount_too_large" else "charge"
            message = code.replace("_", " ")
            return 400, self._error("invalid_request_error", message, code=code, param=param)
        if "amount" not in params or not ("payment_intent" in params or "charge" in params):
            message = "Missing required param."
            return 400, self._error("invalid_request_error", message, code="parameter_missing")
        status, failure_reason = "succeeded", None
        if behaviour in ("pending", "requires_action", "canceled"):
            status = behaviour
        elif isinstance(behaviour, str) and behaviour.startswith("failed:"):
            status, failure_reason = "failed", behaviour.removeprefix("failed:")
        refund = LedgerRefund(
            id=f"re_{secrets.token_hex(12)}",
            idempotency_key=key or "",
            amount=int(params["amount"]),
            currency=params.get("currency", "usd"),
            payment_intent=params.get("payment_intent"),
            charge=params.get("charge"),
            metadata={
                k.removeprefix("metadata[").removesuffix("]"): v
                for k, v in params.items()
                if k.startswith("metadata[")
            },
            status=status,
            failure_reason=failure_reason,
        )
        with self._lock:
            self.ledger.append(refund)
        return 200, self._refund_object(refund)

    def retrieve(self, authorization: str, refund_id: str) -> tuple[int, dict[str, Any]]:
        """`GET /v1/refunds/{id}`: the refund as it is now."""
        self.requests.append({"retrieve": refund_id})
        if authorization.removeprefix("Bearer ").strip() not in self.valid_keys:
            return 401, self._error("invalid_request_error", "Invalid API Key provided.")
        with self._lock:
            found = next((r for r in self.ledger if r.id == refund_id), None)
        if found is None:
            return 404, self._error("invalid_request_error", f"No such refund: '{refund_id}'")
        return 200, self._refund_object(found)

    def list_refunds(self, authorization: str, query: dict[str, str]) -> tuple[int, dict]:
        """`GET /v1/refunds?payment_intent=…|charge=…`: a payment's refunds, newest first."""
        self.requests.append({"list": query})
        if authorization.removeprefix("Bearer ").strip() not in self.valid_keys:
            return 401, self._error("invalid_request_error", "Invalid API Key provided.")
        with self._lock:
            found = [
                r
                for r in reversed(self.ledger)
                if ("payment_intent" not in query or r.payment_intent == query["payment_intent"])
                and ("charge" not in query or r.charge == query["charge"])
            ]
        limit = int(query.get("limit") or 10)
        body = {
            "object": "list",
            "data": [self._refund_object(r) for r in found[:limit]],
            "has_more": len(found) > limit,
            "url": "/v1/refunds",
        }
        return 200, body

    def forget_keys(self) -> None:
        """Stripe forgets an idempotency key 24 hours after its first use."""
        with self._lock:
            self._saved.clear()

    def refund_object(self, refund_id: str) -> dict[str, Any]:
        """The Refund object as a webhook's `data.object` carries it."""
        with self._lock:
            found = next(r for r in self.ledger if r.id == refund_id)
        return self._refund_object(found)

    def event(self, type: str, obj: dict[str, Any], *, created: int | None = None) -> dict:
        """An Event object as Stripe posts it to a webhook endpoint, checked against Stripe's
        schemas (its `data.object` too) before any test sends it."""
        payload = {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": STRIPE_API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }
        validate_event(payload)
        return payload

    def settle(self, refund_id: str, status: str, failure_reason: str | None = None) -> None:
        """Stripe settles a pending refund later (what its webhook would announce)."""
        with self._lock:
            refund = next(r for r in self.ledger if r.id == refund_id)
            refund.status, refund.failure_reason = status, failure_reason


def _handler(server: StripeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _check_request(self, body: str) -> None:
            url = urlsplit(self.path)
            content_type = self.headers.get("Content-Type", "")
            server.violations += validate_request(
                self.command, url.path, url.query, body, content_type
            )

        def do_GET(self) -> None:
            self._check_request("")
            url = urlsplit(self.path)
            if url.path == "/v1/refunds":
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                status, body = server.list_refunds(self.headers.get("Authorization", ""), query)
                self._send(status, body)
                return
            refund_id = self.path.removeprefix("/v1/refunds/")
            if not self.path.startswith("/v1/refunds/") or "/" in refund_id:
                self._send(404, {"error": {"type": "invalid_request_error", "message": "?"}})
                return
            status, body = server.retrieve(self.headers.get("Authorization", ""), refund_id)
            time.sleep(server.latency)
            self._send(status, body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            self._check_request(raw)
            if self.path != "/v1/refunds" or not self.headers.get("Content-Type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                self._send(404, {"error": {"type": "invalid_request_error", "message": "?"}})
                return
            params = dict(parse_qsl(raw, keep_blank_values=True))
            status, body, how = server.handle(
                self.headers.get("Authorization", ""), self.headers.get("Idempotency-Key"), params
            )
            if how == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if how.startswith("hang:"):
                time.sleep(float(how.removeprefix("hang:")))
            time.sleep(server.latency)
            self._send(status, body, replayed=how == "replay")

        def _send(self, status: int, body: dict[str, Any], *, replayed: bool = False) -> None:
            server.violations += validate_response(self.command, self.path, status, body)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            if replayed:
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: dozens of worker threads connecting at once would
    # see dropped SYNs and wait a second for each retransmit.
    request_queue_size = 128


class RunningStripeServer:
    """Start on a free local port; `close()` stops it."""

    def __init__(self, *valid_keys: str) -> None:
        self.state = StripeServer(valid_keys=set(valid_keys))
        self._httpd = _Server(("127.0.0.1", 0), _handler(self.state))
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.state.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
