"""The payment-gateway interface and the built-in fake gateway (docs/rules.md, Payouts)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache
from typing import Any, Literal, Protocol
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.module_loading import import_string

from kernel.money import minor_unit


class GatewayError(Exception):
    """The gateway refused (declined, invalid); retrying later may succeed."""


class GatewayDeclined(GatewayError):
    """A definite failure: no money moved, and asking again with the same key would get the same
    answer (Stripe replays a key's first answer). Never retried automatically; the message is the
    reason staff read. A staff retry sends a new key (docs/rules.md, Payouts)."""


class GatewayTimeout(GatewayError):
    """No answer: the refund may or may not have happened. Retry with the same key to learn."""


class GatewayUnauthorized(GatewayError):
    """The gateway refused our credentials: nothing a retry can fix until staff change the key.
    The payout waits; staff are alerted."""


@dataclass(frozen=True)
class GatewayResult:
    reference: str
    status: Literal["succeeded", "pending"]


class PaymentGateway(Protocol):
    def pays(self, payment_method: str) -> bool:
        """Whether this gateway can send money back to a payment of that method. A payout it
        cannot pay is never sent: it waits for staff, who pay outside the portal (docs/rules.md,
        Payouts)."""
        ...

    def refund(
        self,
        payment_reference: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        *,
        metadata: Mapping[str, str] | None = None,
        known_reference: str | None = None,
        search_since: datetime | None = None,
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

    def pays(self, payment_method: str) -> bool:
        # The fake stands in for every processor the marketplace takes payments through.
        return True

    def _mode(self, payment_reference: str) -> str:
        for marker in ("fail", "pending", "timeout"):
            if f"{marker}-" in payment_reference or payment_reference.startswith(marker):
                return marker
        return settings.FAKE_GATEWAY_MODE

    def refund(
        self,
        payment_reference: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        *,
        metadata: Mapping[str, str] | None = None,
        known_reference: str | None = None,
        search_since: datetime | None = None,
    ) -> GatewayResult:
        # The fake's ledger answers by key, so a refund it already made is found that way (and
        # it never forgets a key: `search_since` is moot).
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


# Stripe's currency rules (docs/rules.md, Payouts): amounts go in the smallest unit as Stripe
# counts it, which is not always ISO 4217's. Zero-decimal currencies (JPY, KRW…) go as whole
# units. Three-decimal ones (KWD, BHD…) go in thousandths whose last digit must be 0. ISK and
# UGX are whole-unit money that Stripe's API still counts in hundredths (kept for backwards
# compatibility), and HUF and TWD are two-decimal for charges and refunds: all four go times 100.
STRIPE_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def stripe_amount(amount: Decimal, currency: str) -> int:
    """The amount as Stripe's API reads it. Never more than asked: a thousandth that Stripe
    cannot take (KWD 5.125) is rounded down to the hundredth it can (5120), so a refund never
    exceeds what was approved."""
    code = currency.upper()
    if code in STRIPE_ZERO_DECIMAL:
        places = 0
    elif code in STRIPE_THREE_DECIMAL:
        minor = int((amount * 1000).to_integral_value(rounding=ROUND_DOWN))
        return minor - minor % 10
    else:
        # Every other currency, the four special cases included, counts in hundredths.
        places = 2
    return int((amount * 10**places).to_integral_value(rounding=ROUND_DOWN))


def stripe_decimal(minor: int, currency: str) -> Decimal:
    """The inverse of `stripe_amount`: an amount Stripe sends (a dispute's) as our Decimal. ISK
    and UGX come in hundredths of a unit that has none, so 400000 is ISK 4000; an amount finer
    than the currency's own minor unit is kept exact, never rounded, since it is Stripe's word
    on what was taken back."""
    code = currency.upper()
    if code in STRIPE_ZERO_DECIMAL:
        value = Decimal(minor)
    elif code in STRIPE_THREE_DECIMAL:
        value = Decimal(minor).scaleb(-3)
    else:
        value = Decimal(minor).scaleb(-2)
    places = minor_unit(code)
    exact = value.quantize(Decimal(1).scaleb(-places))
    return exact if exact == value else value


# Stripe's words for a refund's failure_reason, for staff.
STRIPE_FAILURE_REASONS = {
    "charge_for_pending_refund_disputed": "the customer disputed the charge while the refund "
    "was pending",
    "declined": "the card issuer declined the refund",
    "expired_or_canceled_card": "the card has expired or was cancelled",
    "insufficient_funds": "the Stripe balance could not cover the refund",
    "lost_or_stolen_card": "the card was reported lost or stolen",
    "merchant_request": "the refund was cancelled at the marketplace's request",
    "unknown": "the card network gave no reason",
}

STRIPE_TIMEOUT_SECONDS = 30


@lru_cache(maxsize=8)
def _stripe_client(api_key: str, api_base: str):  # type: ignore[no-untyped-def]
    import stripe

    # No retries inside the client: the payout task retries with the same key and backoff, and
    # a worker must not sit in a retry loop (docs/architecture.md, Payouts).
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS),
    )


class StripeGateway:
    """Refunds through Stripe's API with the official client (README, Connecting Stripe).

    The settings are read on every call (a test points STRIPE_API_BASE at a local server); the
    client is cached per key and address. Each outcome maps onto the gateway errors above:
    succeeded or pending is a result; failed, canceled, 402 and 400 are definite
    (GatewayDeclined); 401/403 is a key problem (GatewayUnauthorized); 429, 5xx, a connection
    error or a timeout leave the outcome unknown (GatewayTimeout), asked again with the same key.
    """

    def pays(self, payment_method: str) -> bool:
        # Stripe holds only the card payments (cards, and card wallets such as Apple Pay, which
        # Stripe processes as cards); PayPal, wallet and bank-transfer money was never Stripe's.
        from orders.models import PaymentMethod

        return payment_method == PaymentMethod.CARD

    def refund(
        self,
        payment_reference: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        *,
        metadata: Mapping[str, str] | None = None,
        known_reference: str | None = None,
        search_since: datetime | None = None,
    ) -> GatewayResult:
        """`known_reference`: the refund an earlier attempt made (a pending one). It is read
        back, never created again: Stripe replays a key's first answer ("pending") for 24 hours
        and forgets the key after, so asking again with the key would never learn that the
        refund settled, and after a day would make a second one.

        `search_since`: the key may be forgotten (first sent more than ~23 hours ago with the
        outcome still unknown). The payment's refunds are listed first and the one made for
        this payout (`metadata[payout]`, created since then) is adopted; only if there is none
        is a refund created (docs/rules.md, Payouts → Stripe)."""
        import stripe

        client = _stripe_client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)
        if known_reference:
            try:
                refund = client.v1.refunds.retrieve(known_reference)
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise _stripe_key_refused(exc) from exc
            except stripe.StripeError as exc:
                # Whatever went wrong, the refund exists: ask again later, never re-create it.
                raise GatewayTimeout(f"Stripe did not say: {_stripe_words(exc)}") from exc
            return _stripe_result(refund)
        if payment_reference.startswith("pi_"):
            payment = {"payment_intent": payment_reference}
        elif payment_reference.startswith("ch_"):
            payment = {"charge": payment_reference}
        else:
            raise GatewayDeclined(
                f"{payment_reference!r} is no Stripe PaymentIntent or Charge: pay it another way"
            )
        if search_since is not None and metadata and metadata.get("payout"):
            found = _stripe_find_refund(client, payment, metadata["payout"], search_since)
            if found is not None:
                return _stripe_result(found)
        params: dict[str, object] = {**payment}
        params["amount"] = stripe_amount(amount, currency)
        if metadata:
            params["metadata"] = dict(metadata)
        try:
            refund = client.v1.refunds.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise _stripe_key_refused(exc) from exc
        except stripe.CardError as exc:
            raise GatewayDeclined(f"Stripe declined the refund: {_stripe_words(exc)}") from exc
        except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
            raise GatewayTimeout(f"Stripe did not answer: {_stripe_words(exc)}") from exc
        except stripe.InvalidRequestError as exc:
            raise GatewayDeclined(f"Stripe refused the refund: {_stripe_words(exc)}") from exc
        except stripe.StripeError as exc:
            # 5xx and anything unforeseen: Stripe may or may not have refunded.
            raise GatewayTimeout(f"Stripe answered with an error: {_stripe_words(exc)}") from exc
        return _stripe_result(refund)


def _stripe_result(refund: Any) -> GatewayResult:
    """A Refund object as the payout reads it; failed and canceled are definite."""
    status = refund.status
    if status == "succeeded":
        return GatewayResult(refund.id, "succeeded")
    if status in {"pending", "requires_action"}:
        return GatewayResult(refund.id, "pending")
    raise GatewayDeclined(
        stripe_refund_failure(refund.id, status, getattr(refund, "failure_reason", None))
    )


def stripe_refund_failure(refund_id: str, status: str, failure_reason: str | None) -> str:
    """A failed or canceled refund in words for staff, however we learnt of it (an answer, a
    read-back, a webhook)."""
    reason = failure_reason or "unknown"
    words = STRIPE_FAILURE_REASONS.get(reason, reason.replace("_", " "))
    return f"Stripe refund {refund_id} {status}: {words}"


# A refund created this long before the current key was first sent is still taken for this
# payout's: Stripe's clock and ours differ by seconds. A refund of an earlier key (a staff retry
# after a definite failure) was created before that failure was known, and so longer before.
STRIPE_CLOCK_SLACK = timedelta(minutes=2)


def stripe_refund_is_current(
    refund_created: int | float, key_generation: int, key_sent_at: datetime | None
) -> bool:
    """Whether a refund whose metadata names a payout was made under the payout's current key:
    with no staff retry there is only one key; after one, refunds older than the retry belong
    to a key that failed definitely."""
    if key_generation == 0:
        return True
    if key_sent_at is None:
        return False  # the new key was not sent yet: no refund of it can exist
    return refund_created >= (key_sent_at - STRIPE_CLOCK_SLACK).timestamp()


def _stripe_find_refund(
    client: Any, payment: dict[str, str], payout: str, since: datetime
) -> Any | None:
    """The refund this payout's key made, among the payment's refunds, or None. Any doubt
    (an error listing them) is an unknown outcome: never post when we could not look."""
    import stripe

    try:
        page = client.v1.refunds.list({**payment, "limit": 100})  # type: ignore[arg-type]
        for refund in page.auto_paging_iter():
            metadata = refund.metadata.to_dict() if refund.metadata else {}
            if metadata.get("payout") == payout and refund.created >= (
                (since - STRIPE_CLOCK_SLACK).timestamp()
            ):
                return refund
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise _stripe_key_refused(exc) from exc
    except stripe.StripeError as exc:
        raise GatewayTimeout(f"Stripe did not list the refunds: {_stripe_words(exc)}") from exc
    return None


def _stripe_key_refused(exc: Any) -> GatewayUnauthorized:
    """Stripe refused our key (401/403), on any call: the payout waits for staff to fix it."""
    return GatewayUnauthorized(
        f"Stripe refused the API key (HTTP {exc.http_status}): set STRIPE_SECRET_KEY to a valid "
        "secret key; the payout waits"
    )


def _stripe_words(exc: Exception) -> str:
    import stripe

    if isinstance(exc, stripe.StripeError):
        code = exc.code or ""
        message = exc.user_message or (exc.error.message if exc.error else "") or ""
        status = f"HTTP {exc.http_status}" if exc.http_status else "no answer"
        return " ".join(part for part in (status, code, message and f"({message})") if part)
    return str(exc)


STRIPE_DASHBOARD = "https://dashboard.stripe.com"


# Where Stripe's dashboard shows each kind of object, by its id's prefix.
STRIPE_DASHBOARD_PATHS = {"re_": "refunds", "dp_": "disputes"}


def stripe_dashboard_url(stripe_id: str) -> str | None:
    """Where staff see a Stripe refund (`re_…`) or dispute (`dp_…`) in Stripe's dashboard, or
    None for anything else, and always None unless the gateway is Stripe (the fake names its
    refunds `re_…` too). A test-mode key's objects live under `/test/`."""
    path = STRIPE_DASHBOARD_PATHS.get(stripe_id[:3])
    if settings.PAYMENT_GATEWAY != "stripe" or path is None:
        return None
    test_mode = settings.STRIPE_SECRET_KEY.startswith(("sk_test_", "rk_test_"))
    return f"{STRIPE_DASHBOARD}/{'test/' if test_mode else ''}{path}/{quote(stripe_id, safe='')}"


def get_gateway() -> PaymentGateway:
    gateway: PaymentGateway = import_string(settings.PAYMENT_GATEWAYS[settings.PAYMENT_GATEWAY])()
    return gateway
