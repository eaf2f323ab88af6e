"""The payment-gateway interface and the built-in fake gateway (docs/rules.md, Payouts)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.module_loading import import_string


class GatewayError(Exception):
    """The gateway refused (declined, invalid); retrying later may succeed."""


class GatewayTimeout(GatewayError):
    """No answer: the refund may or may not have happened. Retry with the same key to learn."""


@dataclass(frozen=True)
class GatewayResult:
    reference: str
    status: Literal["succeeded", "pending"]


class PaymentGateway(Protocol):
    def refund(
        self, payment_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayResult: ...


class FakeGateway:
    """A deterministic stand-in for a card/PayPal processor, with Stripe's idempotency semantics.

    A key seen before returns the refund it created, never a second one. Behaviour comes from
    `settings.FAKE_GATEWAY_MODE` or a marker in the order's payment reference (`fail`,
    `pending`, `timeout`), so tests and the demo can show each path:
    - fail: declines without refunding (a retry with the same key may succeed once the mode
      changes);
    - pending: the refund is created pending and settles on the next call with the same key;
    - timeout: the refund IS made, but the caller gets no answer: the nasty case a retry must
      survive.
    A `slow-` marker (combinable with the others) makes a new refund take `SLOW_SECONDS` after
    it is recorded, before the answer: the broker tests kill the worker in that sleep
    (tests/reliability/test_broker.py). A replay of a known key answers at once.
    """

    SLOW_SECONDS = 20.0

    def _mode(self, payment_reference: str) -> str:
        for marker in ("fail", "pending", "timeout"):
            if f"{marker}-" in payment_reference or payment_reference.startswith(marker):
                return marker
        return settings.FAKE_GATEWAY_MODE

    def refund(
        self, payment_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayResult:
        from .models import GatewayRefund

        mode = self._mode(payment_reference)
        # The gateway's ledger commits on its own, like an external system's would.
        with transaction.atomic(durable=False):
            existing = (
                GatewayRefund.objects.select_for_update()
                .filter(idempotency_key=idempotency_key)
                .first()
            )
            if existing is not None:
                if existing.amount != amount or existing.payment_reference != payment_reference:
                    raise GatewayError("idempotency key reused with different parameters")
                GatewayRefund.objects.filter(pk=existing.pk).update(calls=F("calls") + 1)
                # Settles on the next call whatever the mode (else a "pending-…" reference
                # could never be refunded).
                if existing.status == "pending":
                    existing.status = "succeeded"
                    GatewayRefund.objects.filter(pk=existing.pk).update(status="succeeded")
                return GatewayResult(existing.reference, existing.status)  # type: ignore[arg-type]
            if mode == "fail":
                raise GatewayError("card_declined: the issuer refused the refund")
            status = "pending" if mode == "pending" else "succeeded"
            try:
                with transaction.atomic():
                    created = GatewayRefund.objects.create(
                        idempotency_key=idempotency_key,
                        payment_reference=payment_reference,
                        amount=amount,
                        currency=currency,
                        reference=f"re_{secrets.token_hex(12)}",
                        status=status,
                    )
            except IntegrityError:
                # A concurrent call with the same key won the insert: answer with its refund.
                won = GatewayRefund.objects.get(idempotency_key=idempotency_key)
                return GatewayResult(won.reference, won.status)  # type: ignore[arg-type]
        if "slow-" in payment_reference:
            time.sleep(self.SLOW_SECONDS)
        if mode == "timeout":
            raise GatewayTimeout("the gateway did not answer in time")
        return GatewayResult(created.reference, status)  # type: ignore[arg-type]


def get_gateway() -> PaymentGateway:
    gateway: PaymentGateway = import_string(settings.PAYMENT_GATEWAYS[settings.PAYMENT_GATEWAY])()
    return gateway
