"""Notification services: fan committed audit events out to recipients, send one notice, and
mark notices read (docs/architecture.md, Dependency direction; The event table).

`notifications` reads the audit event table (`orders.Event`, the outbox) and the accounts, and
nothing else of the domain: everything a notice shows is in the event's payload.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string, select_template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from kernel import windows
from kernel.money import format_money
from orders.models import Event, User

from .catalog import AMOUNT_KEYS, DEADLINE_KEYS
from .models import Notification, Role, Status

log = logging.getLogger(__name__)

# Attempts after which the re-dispatch gives up on a notice (staff can retry it in the admin).
MAX_ATTEMPTS = 10
# A worker holds a notice while sending; longer than the deliver task's hard time limit, so a
# live worker never loses its claim, and a dead one's claim simply runs out.
SEND_CLAIM = timedelta(minutes=5)
# A pending notice this old was never queued (broker down) or its message was lost.
REQUEUE_PENDING_AFTER = timedelta(minutes=1)
# A failed notice is re-queued by the re-dispatch only once the task's own retry (countdown at
# most 5 min) would have run, so the two never chase each other.
REQUEUE_FAILED_AFTER = timedelta(minutes=6)
# An SMTP connection idle this long is reopened before use (servers drop idle sessions).
CONNECTION_MAX_IDLE = 30.0

_KIND_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
_BLANK_LINES = re.compile(r"\n{3,}")


# --- fan-out ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanOut:
    events: int  # events claimed (and marked dispatched) by this batch
    notification_ids: list[int]  # notices created for them, to queue for delivery


def _absolute(name: str, *args: Any) -> str:
    """The site's absolute URL of a named page; "" when the payload lacks what it takes."""
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def notification_link(*, kind: str, role: str, payload: dict[str, Any]) -> str:
    """Absolute URL of the page where the reader acts on this notice."""
    dispute_id, case_id = payload.get("dispute_id"), payload.get("case_id")
    if role == Role.STAFF:
        if dispute_id or kind.startswith("dispute."):
            return _absolute("admin:disputes_dispute_changelist")
        if kind.startswith("payout."):
            return _absolute("admin:payouts_payout_changelist")
        if case_id:
            return _absolute("admin:refunds_refundcase_changelist")
        return _absolute("admin:orders_order_changelist")
    if dispute_id:
        return _absolute("dispute-detail", dispute_id)
    if case_id:
        return _absolute("case-detail", case_id)
    return _absolute("order-detail", payload.get("order_number") or "") or _absolute("home")


def _user_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _build_rows(events: Sequence[Mapping[str, Any]], now: datetime) -> list[Notification]:
    """One notice per (event, person); every user is loaded in one query (no N+1)."""
    wanted: set[int] = set()
    staff_wanted = False
    for event in events:
        notify = (event["payload"] or {}).get("notify") or {}
        for role in (Role.BUYER, Role.SELLER):
            user_id = _user_id(notify.get(role))
            if user_id is not None:
                wanted.add(user_id)
        staff_wanted = staff_wanted or bool(notify.get("staff"))
    if not wanted and not staff_wanted:
        return []
    who = Q(pk__in=wanted)
    if staff_wanted:
        who |= Q(is_staff=True)
    users = {
        u.pk: u for u in User.objects.filter(who, is_active=True).only("id", "email", "is_staff")
    }
    staff = [u for u in users.values() if u.is_staff]
    staff_emails = {u.email.lower() for u in staff}
    # Alert addresses that are no staff account (a shared ops mailbox, a pager gateway).
    addresses = sorted(
        {a.strip().lower() for a in settings.STAFF_ALERT_EMAILS if a.strip()} - staff_emails
    )

    rows: list[Notification] = []
    for event in events:
        payload = event["payload"] or {}
        notify = payload.get("notify") or {}
        targets: list[tuple[str, User | None, str]] = []
        for role in (Role.BUYER, Role.SELLER):
            user = users.get(_user_id(notify.get(role)) or 0)
            if user is not None:
                targets.append((role, user, user.email))
        if notify.get("staff"):
            targets.extend((Role.STAFF, user, user.email) for user in staff)
            targets.extend((Role.STAFF, None, address) for address in addresses)
        seen_users: set[int] = set()
        seen_emails: set[str] = set()
        for target_role, user, address in targets:
            email = address.lower()
            # One notice per person: a staff member who is also the buyer reads the buyer's.
            if (user is not None and user.pk in seen_users) or email in seen_emails:
                continue
            if user is not None:
                seen_users.add(user.pk)
            seen_emails.add(email)
            rows.append(
                Notification(
                    event_id=event["id"],
                    recipient=user,
                    email=email,
                    role=target_role,
                    kind=event["kind"],
                    created_at=now,
                    updated_at=now,
                    link=notification_link(kind=event["kind"], role=target_role, payload=payload),
                )
            )
    return rows


def notifications_fan_out_batch(*, limit: int = 1000, now: datetime | None = None) -> FanOut:
    """Claim up to `limit` undispatched events and create their notices, in one transaction.

    SKIP LOCKED: two dispatchers claim disjoint events, and the conditional update of
    `dispatched_at` makes the claim stick even if the lock were not there; the unique
    constraints make a second insert of the same notice a no-op (idempotent).
    """
    now = now or timezone.now()
    with transaction.atomic():
        events = list(
            Event.objects.filter(dispatched_at__isnull=True)
            .order_by("id")
            .select_for_update(skip_locked=True)
            .values("id", "kind", "payload")[:limit]
        )
        if not events:
            return FanOut(events=0, notification_ids=[])
        event_ids = [e["id"] for e in events]
        Event.objects.filter(id__in=event_ids, dispatched_at__isnull=True).update(dispatched_at=now)
        rows = _build_rows(events, now)
        if not rows:
            return FanOut(events=len(events), notification_ids=[])
        Notification.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        # ignore_conflicts returns no ids; the events are ours (locked and claimed above), so
        # every notice of theirs was created by this transaction.
        ids = list(
            Notification.objects.filter(event_id__in=event_ids, status=Status.PENDING)
            .order_by("id")
            .values_list("id", flat=True)
        )
    return FanOut(events=len(events), notification_ids=ids)


def notifications_fan_out(*, limit: int = 1000, now: datetime | None = None) -> list[int]:
    """One batch of the fan-out; the ids of the notices it created."""
    return notifications_fan_out_batch(limit=limit, now=now).notification_ids


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _template_names(kind: str, suffix: str) -> list[str]:
    names = [f"emails/{kind}.{suffix}"] if _KIND_RE.match(kind or "") else []
    return [*names, f"emails/generic.{suffix}"]


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else None


def _money(value: Any, currency: str) -> str:
    """A payload amount ("59.900") as the reader sees money everywhere: "59.90 USD"."""
    try:
        return format_money(Decimal(str(value)), currency)
    except (InvalidOperation, ValueError, TypeError):
        return f"{value} {currency}".strip()


def _label(payload: dict[str, Any], key: str) -> str:
    """The label the payload carries for a code (`reason_label`), lower-cased to sit inside a
    sentence; events written before payloads carried labels fall back to the code itself."""
    label = payload.get(f"{key}_label") or str(payload.get(key) or "").replace("_", " ")
    return str(label).lower()


def notification_context(
    *,
    kind: str,
    role: str,
    payload: dict[str, Any],
    link: str,
    recipient: User | None,
    event: Event | None = None,
) -> dict[str, Any]:
    """What every email template gets: the payload, the deadlines already formatted in the
    marketplace zone and the recipient's, amounts in the currency's minor unit, the links."""
    payload = payload or {}
    viewer_tz = recipient.time_zone if recipient is not None else None
    when: dict[str, str] = {}
    for key in DEADLINE_KEYS:
        instant = _instant(payload.get(key))
        if instant is not None:
            when[key] = windows.format_both(instant, viewer_tz)
    currency = str(payload.get("currency") or "")
    money = {
        key: _money(payload[key], currency)
        for key in AMOUNT_KEYS
        if payload.get(key) not in (None, "")
    }
    case_id = payload.get("case_id")
    happened = event.created_at if event is not None else None
    return {
        "kind": kind,
        "role": role,
        "p": payload,
        "when": when,
        "money": money,
        "link": link,
        "notifications_link": _absolute("notifications:list"),
        "slip_link": _absolute("case-slip", case_id) if case_id else "",
        "recipient": recipient,
        "name": recipient.display_name if recipient is not None else "team",
        "happened_at": windows.format_both(happened, viewer_tz) if happened else "",
        "note": event.note if event is not None else "",
        "from_state": event.from_state if event is not None else "",
        "to_state": event.to_state if event is not None else "",
        "reason_label": _label(payload, "reason"),
        "closed_reason_label": _label(payload, "closed_reason"),
        "marketplace_tz": windows.marketplace_tz().key,
        "viewer_tz": viewer_tz or windows.marketplace_tz().key,
    }


def render_email(context: dict[str, Any]) -> Rendered:
    """Subject, plain text and HTML of one notice (`emails/<kind>.*`, else `emails/generic.*`).

    The HTML is autoescaped (user text is never marked safe); the plain-text templates turn
    autoescaping off, since HTML entities would only garble a text email.
    """
    kind = context["kind"]
    subject = _render_subject(context)
    text: str = render_to_string(_template_names(kind, "txt"), context)
    # Template tags leave blank lines and indentation behind; a text email wants neither.
    text = _BLANK_LINES.sub("\n\n", "\n".join(line.strip() for line in text.splitlines()))
    text = text.strip() + "\n"
    html = render_to_string(_template_names(kind, "html"), context)
    return Rendered(subject=subject, text=text, html=html)


def _render_subject(context: dict[str, Any]) -> str:
    subject = render_to_string(_template_names(context["kind"], "subject.txt"), context)
    # One line, no control characters: a header, never a place for injected headers.
    return " ".join(subject.split())[:250]


def _context_of(notification: Notification) -> dict[str, Any]:
    return notification_context(
        kind=notification.kind,
        role=notification.role,
        payload=notification.event.payload,
        link=notification.link,
        recipient=notification.recipient,
        event=notification.event,
    )


def notification_render(*, notification: Notification) -> Rendered:
    return render_email(_context_of(notification))


def notification_headline(*, notification: Notification) -> str:
    """The subject shown in the portal: the one sent, or (not sent yet) rendered now."""
    if notification.subject:
        return notification.subject
    return _render_subject(_context_of(notification))


def template_exists(kind: str) -> bool:
    try:
        template = select_template(_template_names(kind, "html"))
    except Exception:
        return False
    return template.origin.template_name == f"emails/{kind}.html"


# --- sending ------------------------------------------------------------------------------------

_connections = threading.local()


def _mail_connection() -> BaseEmailBackend:
    """This thread's open connection to the configured backend, reused across notices.

    One SMTP session per worker instead of one per email: the handshake costs more than the
    message. Reopened after `CONNECTION_MAX_IDLE` seconds, when the backend setting changes, and
    after any error.
    """
    backend = settings.EMAIL_BACKEND
    cached = getattr(_connections, "entry", None)
    if cached is not None:
        cached_backend, connection, last_used = cached
        if cached_backend == backend and time.monotonic() - last_used < CONNECTION_MAX_IDLE:
            return connection
        _drop_connection()
    connection = get_connection(backend, fail_silently=False)
    connection.open()
    _connections.entry = (backend, connection, time.monotonic())
    return connection


def _drop_connection() -> None:
    cached = getattr(_connections, "entry", None)
    _connections.entry = None
    if cached is not None:
        try:
            cached[1].close()
        except Exception:
            log.debug("closing a broken mail connection failed", exc_info=True)


def _message_id(notification: Notification) -> str:
    # Stable per notice: should a send be repeated after an ambiguous failure, mail clients
    # that de-duplicate by Message-ID show it once.
    domain = urlsplit(settings.SITE_URL).hostname or "refundportal"
    return f"<{notification.public_id}@{domain}>"


class NoticeEmail(EmailMultiAlternatives):
    """A notice's email: text and HTML, with a MIME boundary of its own.

    Python's email generator otherwise draws a random boundary for every message and compiles
    a regular expression to check that the text does not contain it (one `re.compile` per
    email, 6 % of a worker's CPU per notice). 128 random bits cannot be in the text by chance.
    """

    def message(self, *args: Any, **kwargs: Any) -> Any:
        msg = super().message(*args, **kwargs)
        if msg.is_multipart() and msg.get_boundary() is None:
            msg.set_boundary(f"=_rp_{uuid4().hex}")
        return msg


def _deliver(notification: Notification, rendered: Rendered) -> None:
    message = NoticeEmail(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.email],
        headers={
            "Message-ID": _message_id(notification),
            "Auto-Submitted": "auto-generated",
            "X-RefundPortal-Kind": notification.kind,
        },
    )
    message.attach_alternative(rendered.html, "text/html")
    connection = _mail_connection()
    try:
        sent = connection.send_messages([message])
    except Exception:
        _drop_connection()
        raise
    if not sent:
        _drop_connection()
        raise RuntimeError("the email backend accepted no message")
    _connections.entry = (settings.EMAIL_BACKEND, connection, time.monotonic())


def _claim(notification_ids: Sequence[int], now: datetime) -> tuple[UUID, list[Notification]]:
    """Claim the claimable notices among `notification_ids` with one conditional update, and
    load exactly those (with their event and recipient) by the claim's own token.

    One worker at a time holds a notice, and a sent one is never claimed again: the update's
    condition is re-checked under the row lock, so of two workers racing for a row only one
    matches it.
    """
    token = uuid4()
    claimed = Notification.objects.filter(
        Q(status__in=[Status.PENDING, Status.FAILED])
        | Q(status=Status.SENDING, claimed_until__lt=now),
        pk__in=list(notification_ids),
        attempts__lt=MAX_ATTEMPTS,
    ).update(
        status=Status.SENDING,
        attempts=F("attempts") + 1,
        claimed_until=now + SEND_CLAIM,
        claim_token=token,
        updated_at=now,
    )
    if not claimed:
        return token, []
    held = Notification.objects.select_related("event", "recipient").in_bulk(list(notification_ids))
    order = {notification_id: i for i, notification_id in enumerate(notification_ids)}
    mine = [n for n in held.values() if n.claim_token == token and n.status == Status.SENDING]
    return token, sorted(mine, key=lambda n: order[n.pk])


def _held(notification: Notification, token: UUID) -> Any:
    return Notification.objects.filter(pk=notification.pk, status=Status.SENDING, claim_token=token)


def _send_claimed(notification: Notification, token: UUID) -> None:
    """Render and send a notice this worker holds, and record the outcome on its row.

    The outcome is recorded only while the row is still held by this claim, so it is recorded
    once. A backend error is recorded (`failed`, `last_error`) and re-raised for a retry.
    """
    try:
        rendered = notification_render(notification=notification)
        _deliver(notification, rendered)
    except Exception as exc:
        _held(notification, token).update(
            status=Status.FAILED,
            claimed_until=None,
            claim_token=None,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
            updated_at=timezone.now(),
        )
        raise
    sent_at = timezone.now()
    _held(notification, token).update(
        status=Status.SENT,
        sent_at=sent_at,
        claimed_until=None,
        claim_token=None,
        last_error="",
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        updated_at=sent_at,
    )


def _release(notifications: Sequence[Notification], token: UUID) -> None:
    """Hand back claimed notices that were not tried (their attempt is not counted)."""
    Notification.objects.filter(
        pk__in=[n.pk for n in notifications], status=Status.SENDING, claim_token=token
    ).update(
        status=Status.PENDING,
        attempts=F("attempts") - 1,
        claimed_until=None,
        claim_token=None,
        updated_at=timezone.now(),
    )


def notification_send(*, notification_id: int, now: datetime | None = None) -> str:
    """Render and send one notice; "sent", or "skipped" when it is sent or held elsewhere.

    Sent at most once per row: the claim, and the outcome recorded only under that claim. A
    backend error is recorded on the row and re-raised so the task retries it with backoff; it
    never touches the transition that caused the notice.
    """
    token, claimed = _claim([notification_id], now or timezone.now())
    if not claimed:
        return "skipped"
    _send_claimed(claimed[0], token)
    return "sent"


@dataclass
class SendOutcome:
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # sent already, or held by another worker
    failed: list[int] = field(default_factory=list)  # recorded on the row; retry each alone
    not_tried: list[int] = field(default_factory=list)  # handed back untouched


def notifications_send_many(
    *,
    notification_ids: Sequence[int],
    give_up_after: int = 3,
    reraise: tuple[type[BaseException], ...] = (),
) -> SendOutcome:
    """Send a chunk of fresh notices with one claim and one load for the chunk, then each
    notice sent and recorded on its own row exactly as `notification_send` does.

    After `give_up_after` failures in a row (the mail server is down) the rest are handed back
    untouched for the caller to queue one by one; `reraise` (a task's soft time limit) stops
    the chunk at once, handing back what was not tried.
    """
    outcome = SendOutcome()
    token, claimed = _claim(notification_ids, timezone.now())
    held = {n.pk for n in claimed}
    outcome.skipped = [i for i in notification_ids if i not in held]
    failures_in_a_row = 0
    for position, notification in enumerate(claimed):
        try:
            _send_claimed(notification, token)
        except reraise:
            _release(claimed[position + 1 :], token)
            raise
        except Exception:
            log.warning("notification %s failed", notification.pk, exc_info=True)
            outcome.failed.append(notification.pk)
            failures_in_a_row += 1
            if failures_in_a_row >= give_up_after:
                rest = claimed[position + 1 :]
                _release(rest, token)
                outcome.not_tried = [n.pk for n in rest]
                return outcome
            continue
        failures_in_a_row = 0
        outcome.sent.append(notification.pk)
    return outcome


def notifications_due_for_redispatch(
    *, now: datetime | None = None, limit: int = 5000
) -> list[int]:
    """Notices nobody is working on: pending ones never queued (the broker was down) or whose
    message was lost, failed ones whose own retry is over, and ones a dead worker held."""
    now = now or timezone.now()
    return list(
        Notification.objects.filter(
            Q(status=Status.PENDING, updated_at__lt=now - REQUEUE_PENDING_AFTER)
            | Q(status=Status.FAILED, updated_at__lt=now - REQUEUE_FAILED_AFTER)
            | Q(status=Status.SENDING, claimed_until__lt=now),
            attempts__lt=MAX_ATTEMPTS,
        )
        .order_by("updated_at")
        .values_list("id", flat=True)[:limit]
    )


def notification_retry(*, notification: Notification) -> bool:
    """Staff give a failed notice a fresh set of attempts (admin action)."""
    return (
        Notification.objects.filter(pk=notification.pk, status=Status.FAILED).update(
            status=Status.PENDING, attempts=0, updated_at=timezone.now()
        )
        == 1
    )


# --- reading ------------------------------------------------------------------------------------


def notification_mark_read(
    *, user: User, notification_id: UUID | str, now: datetime | None = None
) -> Notification:
    """Mark one of the user's own notices read; another user's is simply not found."""
    notification = Notification.objects.select_related("event").get(
        public_id=notification_id, recipient=user
    )
    if notification.read_at is None:
        notification.read_at = now or timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
            read_at=notification.read_at
        )
    return notification


def notification_mark_all_read(*, user: User, now: datetime | None = None) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).update(
        read_at=now or timezone.now()
    )
