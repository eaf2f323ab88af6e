"""Pages about orders and their refund cases: My orders, the order page, the invoice, the
four-step refund request, the case page and the return slip.

Every page fetches through the selectors that take the user (an object the user
may not see is a 404), every action is a POST through the same services as the API, and a
service's `DomainError` becomes a form error next to the field it names. Views hand templates
data already loaded: a page costs the same number of queries with 5 rows as with 50.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from orders import windows
from orders.errors import DomainError
from orders.links import RowLinks
from orders.models import Order, OrderStatus, User
from orders.money import format_amount, format_money
from orders.selectors import (
    OrderCards,
    order_get_for_user,
    order_item_lines,
    order_role,
)
from orders.services import message_post_on_order
from orders.throttling import throttle_post
from payouts.selectors import payouts_for_order
from payouts.services import order_cancel_by_buyer, order_cancel_out_of_stock
from portal.badges import case_badge_html, order_badge_html, steps_html
from portal.forms.base import OrderMessageForm, apply_domain_error
from portal.forms.refunds import (
    EVIDENCE_HELP,
    CaseMessageForm,
    DetailsForm,
    EvidenceForm,
    OfferForm,
    ReasonForm,
    RejectForm,
    ShipReturnForm,
)
from portal.paging import first_page_or_paginate
from portal.templatetags.portal import both_zones
from portal.views.pages import render_page
from refunds import services
from refunds.evidence import evidence_add
from refunds.models import DISPUTABLE_REASONS, OPEN_STATES, Reason, RefundCase, State
from refunds.selectors import (
    refund_available_actions,
    refund_case_read,
    refund_cases_for_orders,
    refund_evidence_list,
    refund_filing_open_until,
    refund_filing_options,
    refund_items_read,
    refund_open_case_for_order,
    refund_role,
    refund_thread,
    refund_timeline,
)

ORDERS_PER_PAGE = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _money(amount: Any, currency: str) -> str:
    return format_money(Decimal(str(amount)), currency)


# --- what a person can do now, per order -------------------------------------------------------


@dataclass
class NextStep:
    """One line of "what can be done now, and until when" on an order."""

    text: str
    until: datetime | None = None
    url: str = ""
    button: str = ""
    tone: str = "info"  # info | warn | ok | bad


@dataclass
class OrderRow:
    order: Order
    role: str
    steps: list[NextStep] = field(default_factory=list)
    open_case: RefundCase | None = None
    html: SafeString | str = ""  # the card, built by _order_card_html


def _dispute_of(case: RefundCase) -> Any:
    # The reverse one-to-one of disputes.Dispute (loaded with select_related("dispute")):
    # read as an attribute so this app imports nothing from the app above it.
    return getattr(case, "dispute", None)


def _buyer_can_cancel(order: Order, open_case: RefundCase | None, now: datetime) -> bool:
    """An unshipped order, inside the instant-cancel window, with no refund case running."""
    return (
        order.status == OrderStatus.PAID
        and now <= windows.instant_cancel_until(placed_at=order.placed_at)
        and open_case is None
    )


def _seller_can_cancel(order: Order, open_case: RefundCase | None) -> bool:
    """An unshipped order with no refund case running: out of stock, cancel and refund."""
    return order.status == OrderStatus.PAID and open_case is None


def _order_steps(
    order: Order,
    role: str,
    cases: list[RefundCase],
    now: datetime,
    link: RowLinks | None = None,
) -> tuple[list[NextStep], RefundCase | None]:
    link = link or RowLinks()
    steps: list[NextStep] = []
    open_case = next((c for c in cases if c.state in OPEN_STATES), None)
    if role == "buyer":
        if _buyer_can_cancel(order, open_case, now):
            steps.append(
                NextStep(
                    "Cancel for a full refund at once",
                    windows.instant_cancel_until(placed_at=order.placed_at),
                    link("order-detail", order.number) + "#cancel",
                    "Cancel order",
                    "warn",
                )
            )
        if open_case is not None:
            steps.append(_case_step(open_case, role, link))
        elif order.status != OrderStatus.CANCELLED and order.refundable > 0:
            until = refund_filing_open_until(order=order, now=now)
            if until is not None:
                steps.append(
                    NextStep(
                        "Request a refund",
                        until,
                        link("refund-start", order.number),
                        "Request a refund",
                    )
                )
        for case in cases:
            if case.state == State.CLOSED and _can_dispute(case, now):
                steps.append(
                    NextStep(
                        "Not happy with how your refund request ended? Open a dispute",
                        case.dispute_by,
                        link("dispute-new", case.public_id),
                        "Open a dispute",
                        "bad",
                    )
                )
    elif role == "seller":
        if open_case is not None:
            steps.append(_case_step(open_case, role, link))
        if _seller_can_cancel(order, open_case):
            steps.append(
                NextStep(
                    "Not shipped yet. Out of stock? Cancel it and the buyer is refunded at once.",
                    None,
                    link("order-detail", order.number) + "#out-of-stock",
                    "Open order",
                    "info",
                )
            )
    return steps, open_case


def _can_dispute(case: RefundCase, now: datetime) -> bool:
    return (
        case.state == State.CLOSED
        and case.closed_reason in DISPUTABLE_REASONS
        and case.dispute_by is not None
        and now <= case.dispute_by
        and _dispute_of(case) is None
    )


def _case_step(case: RefundCase, role: str, link: RowLinks) -> NextStep:
    """The open case of an order, as one line: who must act, until when, and the link."""
    url = link("case-detail", case.public_id)
    state = case.state
    if state == State.ESCALATED:
        dispute = _dispute_of(case)
        if dispute is not None:
            url = link("dispute-detail", dispute.public_id)
        return NextStep("A dispute is open; staff will decide", None, url, "View dispute", "warn")
    running = case.deadline()
    until = running[1] if running else None
    yours = running is not None and running[0] == role
    words = {
        (State.REQUESTED, "buyer"): "Refund requested — waiting for the seller's answer",
        (State.REQUESTED, "seller"): "Refund requested — your answer is needed",
        (State.OFFER_MADE, "buyer"): "The seller made an offer — your answer is needed",
        (State.OFFER_MADE, "seller"): "Offer made — waiting for the buyer",
        (State.AWAITING_RETURN, "buyer"): "Send the item back and enter the tracking number",
        (State.AWAITING_RETURN, "seller"): "Waiting for the buyer to ship the return",
        (State.RETURN_SHIPPED, "buyer"): "Return on its way — waiting for the seller",
        (State.RETURN_SHIPPED, "seller"): "Return shipped — confirm when it arrives",
        (State.REFUND_PENDING, "buyer"): "Refund approved — the money is on its way",
        (State.REFUND_PENDING, "seller"): "Refund approved — being paid",
    }
    text = words.get((state, role), case.get_state_display())
    return NextStep(text, until, url, "Open case", "warn" if yours else "info")


# --- My orders ----------------------------------------------------------------------------------


def _order_card_html(
    row: OrderRow,
    items: list[tuple[int, str]],
    viewer_zone: str,
    now: datetime,
    link: RowLinks,
) -> SafeString:
    """One card of My orders, built in Python: the list shows up to 50 of them, and rendering
    each through nested template includes cost more than all the page's queries."""
    order = row.order
    currency = order.currency
    badge = order_badge_html(order)
    case_badge = case_badge_html(row.open_case) if row.open_case is not None else ""
    items_text = ", ".join(f"{quantity} × {escape(title)}" for quantity, title in items)
    if row.role == "buyer":
        party = (
            f'From <a href="{escape(link("seller-public", order.shop.slug))}">'
            f"{escape(order.shop.name)}</a>"
        )
    else:
        party = f"Bought by {escape(order.buyer.display_name)}"
    # The `date:"j M Y, H:i"` filter's text (English month abbreviations), without its
    # general-purpose formatter.
    local = timezone.localtime(order.placed_at)
    placed = f"{local.day} {local:%b %Y, %H:%M}"
    steps = ""
    if row.steps:
        steps = (
            f'\n      <div class="order-card__actions">'
            f"{steps_html(row.steps, viewer_zone=viewer_zone, now=now)}\n</div>\n    "
        )
    number = escape(order.number)
    detail_url = escape(link("order-detail", order.number))
    total = escape(format_money(order.total, currency))
    return mark_safe(  # noqa: S308 - every value above is escaped
        f'\n  <li class="card order-card">\n'
        f'    <div class="order-card__head">\n'
        f'      <a class="order-card__number" href="{detail_url}">'
        f"Order {number}</a>\n"
        f"      {badge}\n\n"
        f"      {case_badge}{chr(10) if case_badge else ''}\n"
        f'      <span class="order-card__total">{total}</span>\n'
        f"    </div>\n"
        f'    <p class="order-card__items">\n'
        f"      {items_text}\n"
        f"    </p>\n"
        f'    <p class="small muted">\n'
        f"      {party}\n"
        f"      · placed {escape(placed)}\n"
        f"      · refundable {escape(format_money(order.refundable, currency))}\n"
        f"      · paid with {escape(order.payment_method_label)}\n"
        f"    </p>\n"
        f"    {steps}\n"
        f"  </li>\n  "
    )


@login_required
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    tab = "seller" if request.GET.get("as") == "seller" else "buyer"
    page = first_page_or_paginate(
        OrderCards(user=user, role=tab), request.GET.get("page"), ORDERS_PER_PAGE
    )
    now = timezone.now()
    viewer_zone = timezone.get_current_timezone_name()
    page_orders: list[Order] = list(page.object_list)
    # The page's cases (newest first, disputes joined) and item lines: one query each.
    order_ids = [o.pk for o in page_orders]
    case_lists = refund_cases_for_orders(order_ids=order_ids)
    items = order_item_lines(order_ids=order_ids)
    link = RowLinks()
    rows = []
    for order in page_orders:
        steps, open_case = _order_steps(order, tab, case_lists[order.pk], now, link)
        row = OrderRow(order, tab, steps, open_case)
        row.html = _order_card_html(row, items[order.pk], viewer_zone, now, link)
        rows.append(row)
    return render_page(
        request, "orders/list.html", {"tab": tab, "rows": rows, "page": page}, nav="orders"
    )


# --- the order page -----------------------------------------------------------------------------


def _order_for(request: HttpRequest, number: str) -> Order:
    return order_get_for_user(user=_user(request), number=number)


def _order_page(
    request: HttpRequest,
    order: Order,
    *,
    message_form: OrderMessageForm | None = None,
    action_error: tuple[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    role = order_role(order=order, user=user)
    cases = list(
        RefundCase.objects.filter(order=order)
        .select_related("dispute")
        .order_by("-created_at", "-id")
    )
    now = timezone.now()
    steps, open_case = _order_steps(order, role, cases, now)
    cancel_until = windows.instant_cancel_until(placed_at=order.placed_at)
    context = {
        "order": order,
        "role": role,
        "items": list(order.items.all()),
        "cases": cases,
        "steps": steps,
        "open_case": open_case,
        "thread": list(order.messages.select_related("author")),
        "payouts": list(payouts_for_order(order=order)),
        "message_form": message_form or OrderMessageForm(),
        "can_cancel": role == "buyer" and _buyer_can_cancel(order, open_case, now),
        "cancel_until": cancel_until,
        "can_cancel_out_of_stock": role == "seller" and _seller_can_cancel(order, open_case),
        "action_error": action_error,
    }
    return render_page(request, "orders/detail.html", context, nav="orders", status=status)


@login_required
@require_GET
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    return _order_page(request, _order_for(request, number))


@login_required
@require_POST
@throttle_post("messages")
def order_message(request: HttpRequest, number: str) -> HttpResponse:
    order = _order_for(request, number)
    form = OrderMessageForm(request.POST)
    if form.is_valid():
        try:
            message_post_on_order(
                order=order, author=_user(request), body=form.cleaned_data["body"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, "Message sent.")
            return redirect(reverse("order-detail", args=[order.number]) + "#thread")
    return _order_page(request, order, message_form=form, status=400)


@login_required
@require_POST
def order_cancel(request: HttpRequest, number: str) -> HttpResponse:
    order = _order_for(request, number)
    try:
        payout = order_cancel_by_buyer(order=order, actor=_user(request))
    except DomainError as exc:
        return _order_page(request, order, action_error=("cancel", exc.message), status=400)
    messages.success(
        request,
        f"Order {order.number} is cancelled. {_money(payout.amount, payout.currency)} goes back "
        f"to {order.payment_method_label}.",
    )
    return redirect("order-detail", number=order.number)


@login_required
@require_POST
def order_cancel_oos(request: HttpRequest, number: str) -> HttpResponse:
    order = _order_for(request, number)
    try:
        payout = order_cancel_out_of_stock(order=order, actor=_user(request))
    except DomainError as exc:
        return _order_page(request, order, action_error=("out-of-stock", exc.message), status=400)
    messages.success(
        request,
        f"Order {order.number} is cancelled as out of stock. The buyer gets "
        f"{_money(payout.amount, payout.currency)} back at once.",
    )
    return redirect("order-detail", number=order.number)


@login_required
@require_GET
def order_invoice(request: HttpRequest, number: str) -> HttpResponse:
    """Printable invoice, with every return number (RMA) issued for the order (SPEC §2)."""
    order = _order_for(request, number)
    returns = list(
        RefundCase.objects.filter(order=order, rma_issued_at__isnull=False).order_by(
            "rma_issued_at"
        )
    )
    return render_page(
        request,
        "orders/invoice.html",
        {
            "order": order,
            "items": list(order.items.all()),
            "returns": returns,
            "payouts": list(payouts_for_order(order=order)),
        },
    )


# --- the refund request, in four steps -----------------------------------------------------------
#
# Step 1 is choosing the order (My orders). Steps 2 and 3 keep what was chosen in the session and
# are checked with the same service that files the request: step 2 with `refund_check_window`,
# step 3 by running `refund_request` inside a savepoint that is then rolled back (same rules,
# nothing written, no notice sent). Files chosen in step 3 are kept in a private draft folder
# (outside the static root) and attached in the POST that files the case, right after it is
# created; a file that is refused is named on the case page, with the reason, and the case
# stands.


class _DryRun(Exception):
    pass


def _draft_key(order: Order) -> str:
    return f"refund_draft:{order.number}"


def _draft(request: HttpRequest, order: Order) -> dict[str, Any]:
    return dict(request.session.get(_draft_key(order)) or {})


def _save_draft(request: HttpRequest, order: Order, draft: dict[str, Any]) -> None:
    request.session[_draft_key(order)] = draft


def _drafts_root() -> Path:
    return Path(settings.PRIVATE_STORAGE_ROOT) / "drafts"


DRAFT_FILE_MAX_AGE = 24 * 3600


def _stash(upload: Any) -> dict[str, Any]:
    root = _drafts_root()
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    with open(root / token, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return {"token": token, "name": str(upload.name)[:200], "size": int(upload.size)}


def _stashed_path(token: str) -> Path:
    # Tokens are our own uuid4 hex; anything else never becomes a path.
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        raise Http404("No such draft file.")
    return _drafts_root() / token


def _discard_files(files: list[dict[str, Any]]) -> None:
    for item in files:
        _stashed_path(item["token"]).unlink(missing_ok=True)


def _sweep_old_drafts() -> None:
    """Abandoned drafts' files go after a day (checked whenever a new file is stashed)."""
    root = _drafts_root()
    if not root.is_dir():
        return
    cutoff = time.time() - DRAFT_FILE_MAX_AGE
    for path in root.iterdir():
        try:
            if path.stat().st_mtime >= cutoff:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            continue


def _buyer_order(request: HttpRequest, number: str) -> tuple[Order, RedirectOrNone]:
    order = _order_for(request, number)
    if order.buyer_id != request.user.pk:
        raise PermissionDenied("Only the buyer of this order can ask for a refund.")
    open_case = refund_open_case_for_order(order=order)
    if open_case is not None:
        messages.info(request, "This order already has an open refund case; it is shown below.")
        return order, redirect("case-detail", case_id=open_case.public_id)
    if order.status == OrderStatus.CANCELLED:
        messages.info(request, "This order was cancelled and refunded in full already.")
        return order, redirect("order-detail", number=order.number)
    return order, None


RedirectOrNone = HttpResponse | None


def _steps(current: int, order: Order, draft: dict[str, Any]) -> list[dict[str, Any]]:
    labels = ["Order", "Reason", "Details", "Review"]
    urls = [
        reverse("order-list"),
        reverse("refund-start", args=[order.number]),
        reverse("refund-details", args=[order.number]) if draft.get("reason") else "",
        reverse("refund-review", args=[order.number]) if draft.get("amount") else "",
    ]
    return [
        {
            "n": i + 1,
            "label": label,
            "url": urls[i],
            "current": i + 1 == current,
            "done": i + 1 < current,
        }
        for i, label in enumerate(labels)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def refund_start(request: HttpRequest, number: str) -> HttpResponse:
    """Step 2: the reason. Each reason says its window: open until when, or why not."""
    order, away = _buyer_order(request, number)
    if away is not None:
        return away
    user = _user(request)
    now = timezone.now()
    draft = _draft(request, order)
    options = refund_filing_options(order=order, user=user, now=now)
    if request.method == "POST":
        form = ReasonForm(request.POST)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                services.refund_check_window(order=order, reason=reason, now=now, viewer=user)
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                draft["reason"] = reason
                _save_draft(request, order, draft)
                return redirect("refund-details", number=order.number)
    else:
        form = ReasonForm(initial={"reason": draft.get("reason")})
    selected = form["reason"].value()
    return render_page(
        request,
        "refunds/request_reason.html",
        {
            "order": order,
            "form": form,
            "options": options,
            "selected": selected,
            "steps": _steps(2, order, draft),
            "any_open": any(o["state"] == "open" for o in options),
        },
        nav="orders",
        status=400 if form.errors else 200,
    )


def _details_initial(draft: dict[str, Any], order: Order) -> dict[str, Any]:
    initial: dict[str, Any] = {
        "amount": draft.get("amount") or format_amount(order.refundable, order.currency),
        "return_item": "yes" if draft.get("return_item") else "no",
        "description": draft.get("description", ""),
    }
    for item_id, qty in (draft.get("items") or {}).items():
        initial[f"item_{item_id}"] = qty
    return initial


def _dry_run(order: Order, user: User, draft: dict[str, Any], now: datetime) -> None:
    """Check a draft with the filing service itself; nothing is written (savepoint rollback)."""
    try:
        with transaction.atomic():
            services.refund_request(**_request_kwargs(order, user, draft, now))
            raise _DryRun
    except _DryRun:
        pass


def _request_kwargs(
    order: Order, user: User, draft: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "order": order,
        "buyer": user,
        "reason": draft.get("reason", ""),
        "amount": draft.get("amount"),
        "description": draft.get("description", ""),
        "return_item": bool(draft.get("return_item")),
        "items": [
            services.ItemRequest(order_item_id=int(k), quantity=int(v))
            for k, v in (draft.get("items") or {}).items()
        ],
        "now": now,
    }


@login_required
@require_http_methods(["GET", "POST"])
def refund_details(request: HttpRequest, number: str) -> HttpResponse:
    """Step 3: amount (at most what is refundable), items, return or not, evidence."""
    order, away = _buyer_order(request, number)
    if away is not None:
        return away
    user = _user(request)
    draft = _draft(request, order)
    if not draft.get("reason"):
        messages.info(request, "First choose why you want a refund.")
        return redirect("refund-start", number=order.number)
    prefetch_related_objects([order], "items")  # shop and buyer came with it
    file_errors: list[str] = []
    if request.method == "POST":
        form = DetailsForm(request.POST, order=order)
        uploads = request.FILES.getlist("evidence")
        kept = list(draft.get("files") or [])
        removed = set(request.POST.getlist("remove_file"))
        if removed:
            _discard_files([f for f in kept if f["token"] in removed])
            kept = [f for f in kept if f["token"] not in removed]
        max_bytes, max_files = settings.EVIDENCE_MAX_BYTES, settings.EVIDENCE_MAX_FILES
        accepted: list[Any] = []
        for upload in uploads:
            if (upload.size or 0) > max_bytes:
                file_errors.append(
                    f"“{upload.name}” is too large: at most {max_bytes // (1024 * 1024)} MB."
                )
            elif len(kept) + len(accepted) >= max_files:
                file_errors.append(f"“{upload.name}” was not added: at most {max_files} files.")
            else:
                accepted.append(upload)
        if accepted:
            _sweep_old_drafts()
            kept.extend(_stash(upload) for upload in accepted)
        draft["files"] = kept
        if form.is_valid():
            draft.update(
                {
                    "amount": form.cleaned_data["amount"].strip(),
                    "return_item": form.cleaned_data["return_item"] == "yes",
                    "description": form.cleaned_data["description"],
                    "items": {str(k): v for k, v in form.item_quantities().items()},
                }
            )
            try:
                _dry_run(order, user, draft, timezone.now())
            except DomainError as exc:
                if exc.fields and "reason" in exc.fields:
                    # The window closed since step 2: say so where the reason is chosen.
                    draft.pop("amount", None)
                    _save_draft(request, order, draft)
                    messages.error(request, exc.message)
                    return redirect("refund-start", number=order.number)
                apply_domain_error(form, exc)
        else:
            draft.pop("amount", None)
        _save_draft(request, order, draft)
        if form.is_valid() and not form.errors and not file_errors:
            return redirect("refund-review", number=order.number)
    else:
        form = DetailsForm(initial=_details_initial(draft, order), order=order)
    return render_page(
        request,
        "refunds/request_details.html",
        {
            "order": order,
            "form": form,
            "reason_label": Reason(draft["reason"]).label,
            "files": draft.get("files") or [],
            "file_errors": file_errors,
            "evidence_help": EVIDENCE_HELP,
            "steps": _steps(3, order, draft),
        },
        nav="orders",
        status=400 if (form.errors or file_errors) else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
@throttle_post("refund_filing")
def refund_review(request: HttpRequest, number: str) -> HttpResponse:
    """Step 4: everything on one page, then file it (and attach the files to the new case)."""
    order, away = _buyer_order(request, number)
    if away is not None:
        return away
    user = _user(request)
    draft = _draft(request, order)
    if not draft.get("reason"):
        return redirect("refund-start", number=order.number)
    if not draft.get("amount"):
        return redirect("refund-details", number=order.number)
    prefetch_related_objects([order], "items")  # shop and buyer came with it
    error = ""
    now = timezone.now()
    if request.method == "POST":
        try:
            case = services.refund_request(**_request_kwargs(order, user, draft, now))
        except DomainError as exc:
            error = exc.message
        else:
            _attach_draft_files(request, case, user, draft.get("files") or [])
            request.session.pop(_draft_key(order), None)
            messages.success(
                request,
                f"Refund request filed. {order.shop.name} has until {both_zones(case.respond_by)} "
                "to answer; with no answer by then it is accepted automatically.",
            )
            return redirect("case-detail", case_id=case.public_id)
    items = {i.pk: i for i in order.items.all()}
    chosen = [(items[int(k)], v) for k, v in (draft.get("items") or {}).items() if int(k) in items]
    window = services.refund_window(order=order, reason=draft["reason"])
    return render_page(
        request,
        "refunds/request_review.html",
        {
            "order": order,
            "draft": draft,
            "reason_label": Reason(draft["reason"]).label,
            "window_closes": window.closes_at if window else None,
            "chosen_items": chosen,
            "files": draft.get("files") or [],
            "respond_by": windows.respond_by(filed_at=now),
            "error": error,
            "steps": _steps(4, order, draft),
        },
        nav="orders",
        status=400 if error else 200,
    )


def _attach_draft_files(
    request: HttpRequest, case: RefundCase, user: User, files: list[dict[str, Any]]
) -> None:
    """Attach each kept file to the new case; a refused one is named with its reason."""
    for item in files:
        path = _stashed_path(item["token"])
        try:
            with open(path, "rb") as handle:
                evidence_add(
                    case=case, actor=user, upload=File(handle, name=item["name"]), kind="photo"
                )
        except FileNotFoundError:
            messages.warning(
                request,
                f"“{item['name']}” was not attached: the upload expired. Add it again below.",
            )
        except DomainError as exc:
            messages.warning(
                request,
                f"“{item['name']}” was not attached: {exc.message} You can add another file below.",
            )
        finally:
            path.unlink(missing_ok=True)


# --- the case page -------------------------------------------------------------------------------

# Buttons and forms of the case page: the action's path segment, its form, and its service.
CASE_ACTIONS: dict[str, tuple[type, Any, str]] = {
    "accept": (type(None), services.refund_accept, "Request accepted."),
    "offer": (OfferForm, services.refund_offer, "Offer sent to the buyer."),
    "reject": (RejectForm, services.refund_reject, "Request rejected."),
    "confirm-return": (
        type(None),
        services.refund_confirm_return,
        "Return confirmed; the refund is being paid.",
    ),
    "accept-offer": (
        type(None),
        services.refund_accept_offer,
        "Offer accepted; the refund is being paid.",
    ),
    "decline-offer": (type(None), services.refund_decline_offer, "Offer declined."),
    "withdraw": (type(None), services.refund_withdraw, "Refund request withdrawn."),
    "ship-return": (
        ShipReturnForm,
        services.refund_ship_return,
        "Tracking number saved. The seller has been told the return is on its way.",
    ),
}

EVENT_WORDS = {
    "refund.requested": "Refund requested",
    "refund.accepted": "The seller accepted the request",
    "refund.auto_accepted": "Accepted automatically: the seller did not answer in time",
    "refund.offer_made": "The seller offered a partial refund",
    "refund.offer_accepted": "The buyer accepted the offer",
    "refund.offer_declined": "The buyer declined the offer",
    "refund.offer_lapsed": "The offer lapsed: no answer in time",
    "refund.rejected": "The seller rejected the request",
    "refund.return_shipped": "The return was shipped",
    "refund.return_expired": "Closed: the return was not shipped in time",
    "refund.return_confirmed": "The seller confirmed the return arrived",
    "refund.return_auto_confirmed": "Return counted as received: the seller did not confirm "
    "in time",
    "refund.withdrawn": "The buyer withdrew the request",
    "refund.refunded": "Refund paid",
    "refund.escalated": "Dispute opened",
    "refund.dispute_resolved": "Dispute ended",
    "refund.payout_blocked": "Payment held for a staff check",
    "payout.created": "Refund approved; payment started",
    "payout.succeeded": "The money went back",
    "payout.failed": "A payment attempt failed; it is retried automatically",
    "payout.retried": "Payment retried",
    "evidence.added": "File added",
    "reminder.seller_response": "Reminder sent to the seller",
    "reminder.return_shipping": "Reminder sent to the buyer",
    "reminder.dispute_window": "Reminder sent to the buyer",
    "dispute.opened": "Dispute opened",
    "dispute.statement_added": "The seller added a statement",
    "dispute.review_started": "Staff started the review",
    "dispute.info_requested": "Staff asked for more information",
    "dispute.info_answered": "Information sent to staff",
    "dispute.evidence_added": "File added to the dispute",
    "dispute.decided": "Staff decided the dispute",
    "dispute.withdrawn": "The buyer withdrew the dispute",
    "dispute.statement_window_lapsed": "The seller's time for a statement ended",
}
# Kinds the timeline leaves out: messages have their own thread; staff-desk bookkeeping.
TIMELINE_SKIP = {
    "message.posted",
    "dispute.message_posted",
    "dispute.assigned",
    "dispute.sla_target_passed",
    "dispute.sla_due_passed",
}


def timeline_rows(
    events: Any, currency: str, *, skip: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The audit events as lines a person reads: what happened, when, by whom."""
    rows = []
    for event in events:
        if event.kind in TIMELINE_SKIP or event.kind in skip:
            continue
        what = EVENT_WORDS.get(event.kind, event.kind.replace(".", ": ").replace("_", " "))
        detail = ""
        payload = event.payload or {}
        if event.kind == "refund.offer_made" and payload.get("offer_amount"):
            what = f"The seller offered {_money(payload['offer_amount'], currency)}"
        elif event.kind in ("evidence.added", "dispute.evidence_added"):
            detail = payload.get("file_name", "")
        elif event.kind == "payout.succeeded" and payload.get("amount"):
            what = (
                f"{_money(payload['amount'], currency)} went back to "
                f"{payload.get('payment_method_label', 'the original payment method')}"
            )
        elif event.kind == "refund.return_shipped":
            detail = " ".join(
                filter(None, [payload.get("carrier"), payload.get("tracking_number")])
            )
        rows.append(
            {
                "when": event.created_at,
                "what": what,
                "who": event.actor.display_name if event.actor_id else "RefundPortal",
                "note": event.note,
                "detail": detail,
            }
        )
    return rows


def _next_step(case: RefundCase, role: str, now: datetime) -> dict[str, Any]:
    """The banner at the top of the case page: what happens next, who acts, until when."""
    order = case.order
    shop = order.shop.name
    asked = _money(case.amount, case.currency)
    state = case.state
    if state == State.REQUESTED:
        if role == "seller":
            return {
                "tone": "warn",
                "title": "Your answer is needed",
                "text": "Accept, offer part of the amount, or reject with a reason. With no "
                "answer by the deadline the request is accepted automatically.",
                "until": case.respond_by,
            }
        return {
            "tone": "info",
            "title": f"Waiting for {shop}",
            "text": f"{shop} can accept, offer part of the {asked}, or reject. If they do "
            "not answer in time, your request is accepted automatically.",
            "until": case.respond_by,
        }
    if state == State.OFFER_MADE:
        offer = _money(case.offer_amount, case.currency)
        if role == "buyer":
            return {
                "tone": "warn",
                "title": f"{shop} offers {offer} instead of {asked}",
                "text": "Accept the offer and it is paid at once, or decline it (you can "
                "then open a dispute). With no answer by the deadline it lapses.",
                "until": case.offer_by,
            }
        return {
            "tone": "info",
            "title": f"You offered {offer}",
            "text": "Waiting for the buyer's answer.",
            "until": case.offer_by,
        }
    if state == State.AWAITING_RETURN:
        rma = case.issued_return_number
        if role == "buyer":
            return {
                "tone": "warn",
                "title": f"Send the item back with {rma} on the parcel",
                "text": "Print the return slip, ship the item, then enter the carrier and "
                "tracking number below. If no tracking number is entered by the deadline, "
                "the case closes.",
                "until": case.return_by,
            }
        return {
            "tone": "info",
            "title": "Waiting for the buyer to ship the return",
            "text": f"Return number {rma}.",
            "until": case.return_by,
        }
    if state == State.RETURN_SHIPPED:
        if role == "seller":
            return {
                "tone": "warn",
                "title": "Confirm the return when it arrives",
                "text": f"{case.return_carrier} {case.return_tracking_number}. If you do not "
                "confirm by the deadline, it counts as received and the refund is paid.",
                "until": case.confirm_by,
            }
        return {
            "tone": "info",
            "title": "Your return is on its way",
            "text": f"{shop} has until the deadline to confirm it arrived; after that it "
            "counts as received and you are paid.",
            "until": case.confirm_by,
        }
    if state == State.REFUND_PENDING:
        amount = _money(case.approved_amount or case.amount, case.currency)
        expected = windows.payout_target(approved_at=case.approved_at) if case.approved_at else None
        return {
            "tone": "ok",
            "title": f"Refund approved: {amount}",
            "text": f"It goes back to {order.payment_method_label}. We aim to pay it within a day.",
            "until": expected,
            "until_label": "Expected by",
        }
    if state == State.REFUNDED:
        return {
            "tone": "ok",
            "title": f"Refunded: {_money(case.refunded_amount, case.currency)}",
            "text": f"Paid back to {order.payment_method_label}.",
            "until": None,
        }
    if state == State.ESCALATED:
        return {
            "tone": "warn",
            "title": "A dispute is open",
            "text": "Our staff review the case and decide. Write on the dispute page.",
            "until": None,
        }
    # closed
    why = case.get_closed_reason_display() or "Closed"
    if _can_dispute(case, now):
        if role == "buyer":
            return {
                "tone": "bad",
                "title": f"Closed: {why.lower()}",
                "text": "Not satisfied? Ask our staff to step in: open a dispute before the "
                "deadline.",
                "until": case.dispute_by,
            }
        return {
            "tone": "info",
            "title": f"Closed: {why.lower()}",
            "text": "The buyer may still open a dispute until the deadline.",
            "until": case.dispute_by,
        }
    return {"tone": "info", "title": f"Closed: {why.lower()}", "text": "", "until": None}


def _case_page(
    request: HttpRequest,
    case: RefundCase,
    *,
    forms: dict[str, Any] | None = None,
    action_error: tuple[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    role = refund_role(case=case, user=user)
    now = timezone.now()
    available = {
        a["action"]: a["until"] for a in refund_available_actions(case=case, user=user, now=now)
    }
    forms = forms or {}
    dispute = _dispute_of(case)
    can_message = role in ("buyer", "seller") and case.state != State.ESCALATED
    can_upload = role in ("buyer", "seller", "staff")
    context = {
        "case": case,
        "order": case.order,
        "role": role,
        "next": _next_step(case, role, now),
        "available": available,
        "items": refund_items_read(case=case),
        "timeline": timeline_rows(refund_timeline(case=case), case.currency),
        "thread": refund_thread(case=case),
        "evidence": refund_evidence_list(case=case, for_dispute=False),
        "dispute": dispute,
        "can_dispute": role == "buyer" and _can_dispute(case, now),
        "can_message": can_message,
        "can_upload": can_upload,
        # A blank form only where the template shows it (the same conditions as case.html).
        "message_form": forms.get("message") or (CaseMessageForm() if can_message else None),
        "evidence_form": forms.get("evidence") or (EvidenceForm() if can_upload else None),
        "offer_form": forms.get("offer") or (OfferForm() if "offer" in available else None),
        "reject_form": forms.get("reject") or (RejectForm() if "reject" in available else None),
        "ship_form": forms.get("ship-return")
        or (ShipReturnForm() if "ship-return" in available else None),
        "action_error": action_error,
    }
    return render_page(request, "refunds/case.html", context, nav="orders", status=status)


def _case_for(request: HttpRequest, case_id: Any) -> RefundCase:
    # The dispute (if any) in the same round trip as everything else on the page.
    return refund_case_read(user=_user(request), public_id=case_id)


@login_required
@require_GET
def case_detail(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    return _case_page(request, _case_for(request, case_id))


@login_required
@require_POST
def case_action(request: HttpRequest, case_id: uuid.UUID, action: str) -> HttpResponse:
    case = _case_for(request, case_id)
    form_class, service, done = CASE_ACTIONS[action]
    user = _user(request)
    kwargs: dict[str, Any] = {}
    form = None
    if form_class is not type(None):
        form = form_class(request.POST)
        if not form.is_valid():
            return _case_page(request, case, forms={action: form}, status=400)
        kwargs = dict(form.cleaned_data)
    try:
        service(case=case, actor=user, **kwargs)
    except DomainError as exc:
        if form is not None:
            apply_domain_error(form, exc)
            return _case_page(request, case, forms={action: form}, status=400)
        return _case_page(request, case, action_error=(action, exc.message), status=400)
    messages.success(request, done)
    return redirect("case-detail", case_id=case.public_id)


@login_required
@require_POST
@throttle_post("messages")
def case_message(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    case = _case_for(request, case_id)
    form = CaseMessageForm(request.POST)
    if form.is_valid():
        try:
            services.refund_message_post(
                case=case, author=_user(request), body=form.cleaned_data["body"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, "Message sent.")
            return redirect(reverse("case-detail", args=[case.public_id]) + "#thread")
    return _case_page(request, case, forms={"message": form}, status=400)


@login_required
@require_POST
@throttle_post("uploads")
def case_evidence(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    case = _case_for(request, case_id)
    form = EvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            evidence_add(
                case=case, actor=_user(request), upload=upload, kind=form.cleaned_data["kind"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, f"“{upload.name}” is attached.")
            return redirect(reverse("case-detail", args=[case.public_id]) + "#evidence")
    return _case_page(request, case, forms={"evidence": form}, status=400)


@login_required
@require_GET
def case_slip(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    """The printable return slip; there is one only once a return number has been issued."""
    case = _case_for(request, case_id)
    if not case.issued_return_number:
        raise Http404("No return number has been issued for this case.")
    return render_page(
        request,
        "refunds/slip.html",
        {
            "case": case,
            "order": case.order,
            "items": refund_items_read(case=case),
        },
    )
