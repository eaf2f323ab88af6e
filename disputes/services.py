"""Dispute services: one row-locked service per action (docs/architecture.md, Services and
selectors), shared by the API and admin.

Every service locks the order, then the case, then the dispute (the project's one lock order,
through `refunds.services.case_lock`), checks who may act and whether the state allows it,
applies the django-fsm transition, saves, and writes the audit event. The case moves with the
dispute in the same transaction (`refund_escalate` / `refund_resolve`), and a decision for the
buyer reserves and queues the payout there, keyed per case, so it is paid exactly once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from kernel import windows
from kernel.errors import (
    AmountExceedsRefundable,
    Duplicate,
    NotAllowed,
    ValidationFailed,
)
from kernel.money import format_money, parse_amount_field
from orders.models import User
from payouts.models import Chargeback
from refunds.models import Evidence, RefundCase
from refunds.rules import refund_dispute_refusal
from refunds.services import case_lock, refund_escalate, refund_resolve

from . import rules
from .events import dispute_message_notify, event_dispute
from .models import UNDECIDED_STATES, Dispute, DisputeMessage, DisputeState, Party

PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]{4,30}$")


# --- helpers --------------------------------------------------------------------------------


def dispute_lock(dispute: Dispute | UUID | str) -> Dispute:
    """Lock order → case → dispute and return the fresh dispute with its case and order."""
    public_id = dispute.public_id if isinstance(dispute, Dispute) else dispute
    case_id = Dispute.objects.filter(public_id=public_id).values_list("case__public_id", flat=True)
    case = case_lock(str(case_id.get()))
    locked = Dispute.objects.select_for_update().get(public_id=public_id)
    locked.case = case
    return locked


def dispute_require(*, dispute: Dispute, user: User, action: str) -> str:
    """403 unless `action` is the user's on this dispute; returns the user's role.

    The API calls it before reading a body, so a party calling a staff action hears 403
    whatever it sent; every service checks the whole rule again under the locks.
    """
    if (
        refusal := rules.dispute_role_refusal(dispute=dispute, user=user, action=action)
    ) is not None:
        raise refusal
    return rules.dispute_role(dispute=dispute, user=user)


def _require(dispute: Dispute, user: User, action: str, now: datetime) -> str:
    """The action's rule (role, state, timing) under the locks; returns the user's role."""
    refusal = rules.dispute_action_refusal(dispute=dispute, user=user, action=action, now=now)
    if refusal is not None:
        raise refusal
    return rules.dispute_role(dispute=dispute, user=user)


def _text(value: Any, *, field: str, max_length: int, label: str, required: bool = True) -> str:
    text = (value or "").strip() if isinstance(value, str | type(None)) else str(value).strip()
    if required and not text:
        raise ValidationFailed(f"{label} is required.", fields={field: ["This field is required."]})
    if len(text) > max_length:
        raise ValidationFailed(
            f"{label} is at most {max_length} characters.",
            fields={field: [f"At most {max_length} characters."]},
        )
    return text


def _fmt(instant: datetime, user: User) -> str:
    return windows.format_both(instant, user.time_zone)


# --- opening --------------------------------------------------------------------------------


@transaction.atomic
def dispute_open(
    *,
    case: RefundCase,
    buyer: User,
    statement: str,
    contact_name: str,
    contact_email: str,
    contact_phone: str = "",
    desired_amount: Any,
    now: datetime | None = None,
) -> Dispute:
    """The buyer appeals a case closed as rejected / withdrawn / expired / offer_declined,
    within the dispute window; the case moves to `escalated` in the same transaction."""
    now = now or timezone.now()
    case = case_lock(str(case.public_id))
    order = case.order
    refusal = refund_dispute_refusal(case=case, user=buyer, now=now)
    # To the buyer, a second dispute is named as such, not as a case in the wrong state.
    if not isinstance(refusal, NotAllowed) and Dispute.objects.filter(case=case).exists():
        raise Duplicate("This refund case already has a dispute.")
    if refusal is not None:
        raise refusal

    statement = _text(statement, field="statement", max_length=5000, label="Your statement")
    contact_name = _text(contact_name, field="contact_name", max_length=150, label="Your name")
    contact_email = _text(
        contact_email, field="contact_email", max_length=254, label="Your email address"
    ).lower()
    try:
        validate_email(contact_email)
    except DjangoValidationError as exc:
        raise ValidationFailed(
            "Enter a valid email address.",
            fields={"contact_email": ["Enter a valid email address."]},
        ) from exc
    contact_phone = _text(
        contact_phone,
        field="contact_phone",
        max_length=32,
        label="Your phone number",
        required=False,
    )
    if contact_phone and not PHONE_RE.match(contact_phone):
        raise ValidationFailed(
            "Enter a phone number, e.g. +86 138 0013 8000.",
            fields={"contact_phone": ["Digits, spaces and + only."]},
        )
    if desired_amount in (None, ""):
        raise ValidationFailed(
            "Enter the amount you want back.",
            fields={"desired_amount": ["This field is required."]},
        )
    value = parse_amount_field(desired_amount, order.currency, field="desired_amount")
    if value > order.refundable:
        limit = format_money(order.refundable, order.currency)
        raise AmountExceedsRefundable(
            f"At most {limit} can still be refunded on this order.",
            fields={"desired_amount": [f"At most {limit}."]},
        )

    refund_escalate(case=case, actor=buyer, now=now)
    dispute = Dispute(
        case=case,
        contact_name=contact_name,
        contact_email=contact_email,
        contact_phone=contact_phone,
        statement=statement,
        desired_amount=value,
        currency=order.currency,
        created_at=now,
        statement_by=windows.statement_by(opened_at=now),
        decision_target=windows.decision_target(opened_at=now),
        decision_due=windows.decision_due(opened_at=now),
    )
    try:
        with transaction.atomic():
            dispute.save()
    except IntegrityError as exc:
        # The one-to-one on the case: a concurrent open that did not take the order lock.
        raise Duplicate("This refund case already has a dispute.") from exc
    event_dispute(dispute=dispute, kind="dispute.opened", actor=buyer, from_state="", at=now)
    return dispute


# --- the parties ----------------------------------------------------------------------------


@transaction.atomic
def dispute_add_statement(
    *, dispute: Dispute, seller: User, body: str, now: datetime | None = None
) -> Dispute:
    """The seller's side, once. Accepted until the decision, even after `statement_by`:
    a late statement is still worth reading, but staff need not wait for it."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, seller, "statement", now)
    dispute.seller_statement = _text(body, field="body", max_length=5000, label="The statement")
    dispute.seller_statement_at = now
    dispute.save(update_fields=["seller_statement", "seller_statement_at", "updated_at"])
    event_dispute(
        dispute=dispute,
        kind="dispute.statement_added",
        actor=seller,
        from_state=dispute.state,
        at=now,
        excerpt=dispute.seller_statement[:200],
    )
    return dispute


@transaction.atomic
def dispute_post_message(
    *, dispute: Dispute, author: User, body: str, now: datetime | None = None
) -> DisputeMessage:
    """Parties and staff write on the dispute; the asked party's message answers staff's
    question and returns the dispute to `under_review` (docs/rules.md, Disputes)."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    role = _require(dispute, author, "message", now)
    body = _text(body, field="body", max_length=5000, label="The message")
    message = DisputeMessage.objects.create(
        dispute=dispute, author=author, body=body, created_at=now
    )
    from_state = dispute.state
    if dispute.state == DisputeState.INFO_REQUESTED and dispute.info_party == role:
        question = dispute.info_question
        dispute.answer_info()
        dispute.save()
        event_dispute(
            dispute=dispute,
            kind="dispute.info_answered",
            actor=author,
            from_state=from_state,
            at=now,
            answered_party=role,
            question=question,
            excerpt=body[:200],
            message_id=message.public_id,
        )
    else:
        event_dispute(
            dispute=dispute,
            kind="dispute.message_posted",
            actor=author,
            from_state=from_state,
            at=now,
            notify=dispute_message_notify(role),
            author_role=role,
            excerpt=body[:200],
            message_id=message.public_id,
        )
    return message


def dispute_add_evidence(*, dispute: Dispute, actor: User, upload: Any, kind: str = "") -> Evidence:
    """A file for the dispute (its own 10-file allowance), judged by the refunds evidence
    service, which also writes the audit event (on the case, so the dispute's trail shows it)
    and tells the other party."""
    from refunds.evidence import evidence_add, evidence_count_refusal
    from refunds.sanitize import evidence_clean

    # Re-encoding a large photo takes a while: asked without the locks first (and again under
    # them), so no lock waits on the decoder and no file is decoded only to be refused.
    _require(dispute, actor, "evidence", timezone.now())
    if (full := evidence_count_refusal(case=dispute.case, for_dispute=True)) is not None:
        raise full
    clean = evidence_clean(upload=upload) if upload is not None else None
    with transaction.atomic():
        dispute = dispute_lock(dispute)
        _require(dispute, actor, "evidence", timezone.now())
        return evidence_add(
            case=dispute.case, actor=actor, upload=clean, for_dispute=True, kind=kind
        )


@transaction.atomic
def dispute_withdraw(*, dispute: Dispute, buyer: User, now: datetime | None = None) -> Dispute:
    """The buyer gives up; the case closes as `dispute_withdrawn` (final)."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, buyer, "withdraw", now)
    from_state = dispute.state
    dispute.withdraw(at=now)
    dispute.save()
    refund_resolve(
        case=dispute.case, for_buyer=False, amount=None, actor=buyer, now=now, withdrawn=True
    )
    event_dispute(
        dispute=dispute, kind="dispute.withdrawn", actor=buyer, from_state=from_state, at=now
    )
    return dispute


def dispute_close_for_chargeback(chargeback: Chargeback, now: datetime) -> None:
    """Registered in `payouts.hooks.chargeback_lost` after refunds' own (the caller holds the
    order's lock, refunds locked the case): the bank decided, so an undecided dispute on the
    order closes with the reason `chargeback` (docs/rules.md, Chargebacks)."""
    disputes = (
        Dispute.objects.select_for_update()
        .select_related("case")
        .filter(case__order_id=chargeback.order_id, state__in=UNDECIDED_STATES)
        .order_by("id")
    )
    for dispute in disputes:
        dispute.case.order = chargeback.order
        from_state = dispute.state
        dispute.close_for_chargeback(at=now)
        dispute.save()
        event_dispute(
            dispute=dispute,
            kind="dispute.closed_by_chargeback",
            actor=None,
            from_state=from_state,
            at=now,
            stripe_dispute_id=chargeback.stripe_dispute_id,
        )


# --- staff ----------------------------------------------------------------------------------


def _staff_assignee(assignee: User | None) -> User | None:
    if assignee is not None and not (assignee.is_staff and assignee.is_active):
        raise ValidationFailed(
            "Disputes are assigned to active staff only.",
            fields={"assigned_to": ["Not an active staff member."]},
        )
    return assignee


@transaction.atomic
def dispute_assign(
    *, dispute: Dispute, staff: User, assignee: User | None, now: datetime | None = None
) -> Dispute:
    """Who works the dispute; `None` puts it back in the unassigned queue."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, staff, "assign", now)
    assignee = _staff_assignee(assignee)
    previous = dispute.assigned_to
    if (previous.pk if previous else None) == (assignee.pk if assignee else None):
        return dispute
    dispute.assigned_to = assignee
    dispute.save(update_fields=["assigned_to", "updated_at"])
    event_dispute(
        dispute=dispute,
        kind="dispute.assigned",
        actor=staff,
        from_state=dispute.state,
        at=now,
        assigned_to=assignee.email if assignee else None,
        previously_assigned_to=previous.email if previous else None,
    )
    return dispute


@transaction.atomic
def dispute_start_review(*, dispute: Dispute, staff: User, now: datetime | None = None) -> Dispute:
    """open → under_review; the reviewer takes the dispute unless someone already has it."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, staff, "start_review", now)
    from_state = dispute.state
    dispute.start_review(staff=staff)
    dispute.save()
    event_dispute(
        dispute=dispute,
        kind="dispute.review_started",
        actor=staff,
        from_state=from_state,
        at=now,
        assigned_to=dispute.assigned_to.email if dispute.assigned_to else None,
    )
    return dispute


@transaction.atomic
def dispute_request_info(
    *, dispute: Dispute, staff: User, party: str, question: str, now: datetime | None = None
) -> Dispute:
    """Staff ask the buyer or the seller for more; that party's next message answers."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, staff, "request_info", now)
    if party not in Party.values:
        raise ValidationFailed(
            "Ask the buyer or the seller.", fields={"party": ['Choose "buyer" or "seller".']}
        )
    question = _text(question, field="question", max_length=2000, label="The question")
    from_state = dispute.state
    dispute.request_info(staff=staff, party=party, question=question, at=now)
    dispute.save()
    event_dispute(
        dispute=dispute,
        kind="dispute.info_requested",
        actor=staff,
        from_state=from_state,
        at=now,
        note=question,
        asked_party=party,
    )
    return dispute


@transaction.atomic
def dispute_decide(
    *,
    dispute: Dispute,
    staff: User,
    outcome: str,
    amount: Any = None,
    rationale: str,
    now: datetime | None = None,
) -> Dispute:
    """Staff decide, from any undecided state, once the seller has made a statement or its
    48 h have passed (docs/rules.md, Deciding a dispute). For the buyer, the amount (default: what
    the buyer asked for, at most what the order can still refund) is reserved and queued for payout
    here; the row locks make a decision submitted twice at once pay exactly once."""
    now = now or timezone.now()
    dispute = dispute_lock(dispute)
    _require(dispute, staff, "decide", now)
    if outcome not in Party.values:
        raise ValidationFailed(
            "Decide for the buyer or for the seller.",
            fields={"outcome": ['Choose "buyer" or "seller".']},
        )
    rationale = _text(rationale, field="rationale", max_length=5000, label="The rationale")
    order = dispute.case.order
    from_state = dispute.state
    if outcome == Party.BUYER:
        value = (
            dispute.desired_amount
            if amount in (None, "")
            else parse_amount_field(amount, order.currency)
        )
        if value > order.refundable:
            limit = format_money(order.refundable, order.currency)
            raise AmountExceedsRefundable(
                f"At most {limit} can still be refunded on this order.",
                fields={"amount": [f"At most {limit}."]},
            )
        dispute.decide_for_buyer(amount=value, rationale=rationale, staff=staff, at=now)
    else:
        if amount not in (None, ""):
            raise ValidationFailed(
                "A decision for the seller pays nothing; leave the amount empty.",
                fields={"amount": ["Leave empty."]},
            )
        value = None
        dispute.decide_for_seller(rationale=rationale, staff=staff, at=now)
    dispute.save()
    refund_resolve(
        case=dispute.case, for_buyer=outcome == Party.BUYER, amount=value, actor=staff, now=now
    )
    event_dispute(
        dispute=dispute,
        kind="dispute.decided",
        actor=staff,
        from_state=from_state,
        at=now,
        note=rationale,
    )
    return dispute
