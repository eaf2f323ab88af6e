"""Stripe's webhooks in (docs/architecture.md, Stripe webhooks; README, Connecting Stripe).

`POST /webhooks/stripe/` is routed whatever the configured gateway. The `Stripe-Signature`
header is verified by Stripe's own client against `STRIPE_WEBHOOK_SECRET` (read at call time)
with a 5-minute tolerance; anything unverified is a 400 and changes nothing. A verified event is
recorded (`StripeEvent`) in the same transaction as its handling: a redelivery finds the record
and does nothing, a crash mid-handling leaves no record and Stripe sends the event again, and a
second delivery running at the same moment waits on the first one's unique insert.

Handlers are looked up by event type in `WEBHOOK_HANDLERS`; each is called with the event's
`data.object` as a plain dict and the event's `created` instant, inside the transaction, and
must never call the network. An event type with no handler is recorded and answered 200.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from kernel.security import security_event

from . import chargebacks, services
from .gateway import stripe_refund_failure, stripe_refund_is_current
from .models import Payout, StripeEvent

log = logging.getLogger(__name__)

# Stripe's own default: a signature older than this is refused (a replayed request).
STRIPE_SIGNATURE_TOLERANCE = 300

WebhookHandler = Callable[[dict[str, Any], datetime], object]


# --- refunds ------------------------------------------------------------------------------------


def _payout_of_refund(refund: dict[str, Any]) -> Payout | None:
    """Our payout for a Stripe refund: by the refund id we hold, else by `metadata[payout]`
    (our call timed out before we learnt the id). None for a refund not made by us, and for a
    refund of an earlier key of the payout (a staff retry after a definite failure asked for a
    new refund: the old one's late events must not move the new attempt)."""
    reference = str(refund.get("id") or "")
    if reference:
        found = Payout.objects.filter(gateway_reference=reference).first()
        if found is not None:
            return found
    public_id = (refund.get("metadata") or {}).get("payout")
    try:
        payout = Payout.objects.filter(public_id=uuid.UUID(str(public_id))).first()
    except ValueError:
        return None
    if payout is None or payout.gateway_reference not in ("", reference):
        return None
    created = refund.get("created") or 0
    if not stripe_refund_is_current(created, payout.key_generation, payout.key_sent_at):
        return None
    return payout


def stripe_refund_changed(refund: dict[str, Any], at: datetime) -> str:
    """`refund.created`, `refund.updated`, `refund.failed`, `charge.refund.updated`: the
    refund's status as of the event moves a pending payout; a settled one never moves back."""
    payout = _payout_of_refund(refund)
    if payout is None:
        return "not-ours"
    reference = str(refund["id"])
    status = refund.get("status")
    if status == "succeeded":
        return services.payout_refund_succeeded(payout=payout, reference=reference, at=at)
    if status in {"failed", "canceled"}:
        reason = stripe_refund_failure(reference, status, refund.get("failure_reason"))
        return services.payout_refund_failed(
            payout=payout, reference=reference, reason=reason, at=at
        )
    if status in {"pending", "requires_action"}:
        return services.payout_refund_pending(payout=payout, reference=reference, at=at)
    return f"status-{status}"[:60]


def stripe_dispute_created(dispute: dict[str, Any], at: datetime) -> str:
    """`charge.dispute.created`: the buyer's bank disputes the charge; the order's payouts are
    held (docs/rules.md, Chargebacks)."""
    chargeback = chargebacks.chargeback_opened(dispute=dispute, at=at)
    return "not-ours" if chargeback is None else f"chargeback-{chargeback.status}"


def stripe_dispute_closed(dispute: dict[str, Any], at: datetime) -> str:
    """`charge.dispute.closed`: lost counts as refunded, won releases the hold."""
    chargeback = chargebacks.chargeback_closed(dispute=dispute, at=at)
    return "not-ours" if chargeback is None else f"chargeback-{chargeback.status}"


# Event type -> handler.
WEBHOOK_HANDLERS: dict[str, WebhookHandler] = {
    "refund.created": stripe_refund_changed,
    "refund.updated": stripe_refund_changed,
    "refund.failed": stripe_refund_changed,
    "charge.refund.updated": stripe_refund_changed,
    "charge.dispute.created": stripe_dispute_created,
    "charge.dispute.closed": stripe_dispute_closed,
}


# --- receiving one event ------------------------------------------------------------------------


def stripe_event_receive(*, event: dict[str, Any]) -> str:
    """Record a verified event and handle it, once: the outcome ("duplicate" for an event id
    already recorded)."""
    data = event.get("data")
    data_object = data.get("object") if isinstance(data, dict) else None
    if not isinstance(data_object, dict):
        data_object = {}
    created = datetime.fromtimestamp(int(event.get("created") or 0), tz=UTC)
    handler = WEBHOOK_HANDLERS.get(str(event.get("type")))
    try:
        with transaction.atomic():
            # The insert comes first: a concurrent delivery of the same id blocks on the unique
            # index until this transaction ends, then finds it recorded (or, if this one
            # failed, handles it itself).
            record = StripeEvent.objects.create(
                event_id=str(event["id"])[:255],
                type=str(event.get("type"))[:100],
                object_id=str(data_object.get("id") or "")[:255],
                created=created,
                outcome="received",
            )
            outcome = "unhandled" if handler is None else str(handler(dict(data_object), created))
            StripeEvent.objects.filter(pk=record.pk).update(outcome=outcome[:60])
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=str(event["id"])[:255]).exists():
            return "duplicate"
        raise
    return outcome


def _refuse(request: HttpRequest, why: str, message: str) -> JsonResponse:
    security_event("stripe_webhook_refused", request=request, reason=why)
    return JsonResponse({"error": message}, status=400)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe retries anything but a 2xx for days, so only an event we could not verify is
    refused; a verified one is answered 200 whatever it is."""
    import stripe

    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        return _refuse(request, "no_secret", "Webhooks are not configured.")
    header = request.headers.get("Stripe-Signature")
    if not header:
        return _refuse(request, "no_signature", "The Stripe-Signature header is missing.")
    payload = request.body
    try:
        # The client's own check; the body is then read as a plain dict (handlers take dicts).
        stripe.WebhookSignature.verify_header(
            payload, header, secret, tolerance=STRIPE_SIGNATURE_TOLERANCE
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError:
        return _refuse(request, "bad_signature", "The signature does not match or is too old.")
    except ValueError:  # undecodable bytes or JSON
        return _refuse(request, "unparsable", "The body is not a Stripe event.")
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return _refuse(request, "unparsable", "The body is not a Stripe event.")
    outcome = stripe_event_receive(event=event)
    log.info("stripe event %s %s: %s", event["id"], event.get("type"), outcome)
    return JsonResponse({"received": True, "outcome": outcome})
