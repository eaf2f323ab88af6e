"""Pages about orders and their refund cases: My orders, the order page, the invoice, the
four-step refund request, the case page and the return slip.

Every page fetches through the selectors that take the user (an object the user
may not see is a 404), every action is a POST through the same services as the API, and a
service's `DomainError` becomes a form error next to the field it names. Views hand templates
data already loaded: a page costs the same number of queries with 5 rows as with 50.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api.throttling import throttle_post
from kernel import windows
from kernel.errors import DomainError
from kernel.money import format_amount, format_money
from orders.models import Order, OrderStatus, User
from orders.rules import order_cancel_out_of_stock_refusal, order_cancel_refusal, order_role
from orders.selectors import order_get_for_user
from orders.services import message_post_on_order
from payouts.selectors import chargeback_open_for_order, payouts_for_order
from payouts.services import order_cancel_by_buyer, order_cancel_out_of_stock
from portal.forms.base import OrderMessageForm, PortalForm, apply_domain_error
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
from portal.selectors import case_page_read, order_cards
from portal.templatetags.portal import both_zones
from portal.views.pages import render_page
from refunds import services
from refunds.drafts import (
    RefundDraft,
    refund_draft_add_files,
    refund_draft_get,
    refund_draft_remove_files,
    refund_draft_save,
    refund_draft_submit,
    refund_draft_validate,
)
from refunds.evidence import evidence_add
from refunds.models import OPEN_STATES, Reason, RefundCase, State
from refunds.rules import (
    ACTION_OF_NAME,
    refund_actions,
    refund_cancel_holds_of,
    refund_dispute_annotations,
    refund_dispute_refusal,
    refund_party_refusal,
    refund_role,
)
from refunds.selectors import (
    refund_evidence,
    refund_filing_open_until,
    refund_filing_options,
    refund_items,
    refund_messages,
    refund_open_case_for_order,
)
from refunds.timeline import refund_timeline_entries

ORDERS_PER_PAGE = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _money(amount: Any, currency: str) -> str:
    return format_money(Decimal(str(amount)), currency)


# --- what a person can do now, per order -------------------------------------------------------


@dataclass
class NextStep:
    """One line of "what can be done now, and until when" on an order. Its words and link are
    in templates/refunds/partials/next_steps.html, chosen by `kind` (cancel, request, dispute,
    out_of_stock, or case: then by the case's state and the viewer's role)."""

    kind: str
    until: datetime | None = None
    tone: str = "info"  # info | warn | ok | bad
    case: RefundCase | None = None


@dataclass
class OrderRow:
    order: Order
    role: str
    steps: list[NextStep] = field(default_factory=list)
    open_case: RefundCase | None = None


def _dispute_of(case: RefundCase) -> Any:
    # The reverse one-to-one of disputes.Dispute, loaded with select_related("dispute"); None
    # when the case has none.
    return getattr(case, "dispute", None)


def _buyer_can_cancel(order: Order, user: User, cases: list[RefundCase], now: datetime) -> bool:
    holds = refund_cancel_holds_of(cases=cases)
    return order_cancel_refusal(order=order, user=user, now=now, holds=holds) is None


def _seller_can_cancel(order: Order, user: User, cases: list[RefundCase]) -> bool:
    holds = refund_cancel_holds_of(cases=cases)
    return order_cancel_out_of_stock_refusal(order=order, user=user, holds=holds) is None


def _order_steps(
    order: Order, user: User, role: str, cases: list[RefundCase], now: datetime
) -> tuple[list[NextStep], RefundCase | None]:
    steps: list[NextStep] = []
    for case in cases:
        case.order = order  # loaded already: the rules read the case's order
    open_case = next((c for c in cases if c.state in OPEN_STATES), None)
    if role == "buyer":
        if _buyer_can_cancel(order, user, cases, now):
            cancel_until = windows.instant_cancel_until(placed_at=order.placed_at)
            steps.append(NextStep("cancel", cancel_until, "warn"))
        if open_case is not None:
            steps.append(_case_step(open_case, role))
        elif order.status != OrderStatus.CANCELLED and order.refundable > 0:
            until = refund_filing_open_until(order=order, now=now)
            if until is not None:
                steps.append(NextStep("request", until))
        for case in cases:
            if case.state == State.CLOSED and _can_dispute(case, now):
                steps.append(NextStep("dispute", case.dispute_by, "bad", case))
    elif role == "seller":
        if open_case is not None:
            steps.append(_case_step(open_case, role))
        if _seller_can_cancel(order, user, cases):
            steps.append(NextStep("out_of_stock"))
    return steps, open_case


def _can_dispute(case: RefundCase, now: datetime) -> bool:
    """Whether the buyer may still dispute the case (the page says so to either party)."""
    return refund_dispute_refusal(case=case, user=case.order.buyer, now=now) is None


def _case_step(case: RefundCase, role: str) -> NextStep:
    """The open case of an order, as one line: until when, and whether it is the viewer's turn."""
    if case.state == State.ESCALATED:
        return NextStep("case", None, "warn", case)
    running = case.deadline()
    yours = running is not None and running[0] == role
    return NextStep("case", running[1] if running else None, "warn" if yours else "info", case)


# --- My orders ----------------------------------------------------------------------------------


@login_required
@require_GET
def order_list(request: HttpRequest) -> HttpResponse:
    tab = "seller" if request.GET.get("as") == "seller" else "buyer"
    user = _user(request)
    cards = order_cards(user=user, role=tab)
    page = first_page_or_paginate(cards, request.GET.get("page"), ORDERS_PER_PAGE)
    now = timezone.now()
    rows = []
    for order in page.object_list:
        steps, open_case = _order_steps(order, user, tab, order.cases, now)
        rows.append(OrderRow(order, tab, steps, open_case))
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
        .annotate(**refund_dispute_annotations())
        .order_by("-created_at", "-id")
    )
    now = timezone.now()
    steps, open_case = _order_steps(order, user, role, cases, now)
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
        "can_cancel": _buyer_can_cancel(order, user, cases, now),
        "cancel_until": cancel_until,
        "can_cancel_out_of_stock": _seller_can_cancel(order, user, cases),
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
    """Printable invoice, with every return number (RMA) issued for the order (docs/rules.md,
    Messages and the invoice)."""
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
# Step 1 is choosing the order (My orders). Steps 2 and 3 keep what was chosen in a draft
# (refunds/drafts.py) and check it with the rules the filing service applies: step 2 with
# `refund_check_window`, step 3 with `refund_draft_validate` (no write, no lock). Step 4 files
# the draft and attaches its files to the new case; a file that is refused is named on the case
# page, with the reason, and the case stands.


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


def _steps(current: int, order: Order, draft: RefundDraft) -> list[dict[str, Any]]:
    labels = ["Order", "Reason", "Details", "Review"]
    urls = [
        reverse("order-list"),
        reverse("refund-start", args=[order.number]),
        reverse("refund-details", args=[order.number]) if draft.reason else "",
        reverse("refund-review", args=[order.number]) if draft.amount else "",
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
    draft = refund_draft_get(session=request.session, order=order)
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
                draft.reason = reason
                refund_draft_save(session=request.session, order=order, draft=draft)
                return redirect("refund-details", number=order.number)
    else:
        form = ReasonForm(initial={"reason": draft.reason or None})
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


def _details_initial(draft: RefundDraft, order: Order) -> dict[str, Any]:
    initial: dict[str, Any] = {
        "amount": draft.amount or format_amount(order.refundable, order.currency),
        "return_item": "yes" if draft.return_item else "no",
        "description": draft.description,
    }
    for item_id, qty in draft.items.items():
        initial[f"item_{item_id}"] = qty
    return initial


@login_required
@require_http_methods(["GET", "POST"])
def refund_details(request: HttpRequest, number: str) -> HttpResponse:
    """Step 3: amount (at most what is refundable), items, return or not, evidence."""
    order, away = _buyer_order(request, number)
    if away is not None:
        return away
    user = _user(request)
    draft = refund_draft_get(session=request.session, order=order)
    if not draft.reason:
        messages.info(request, "First choose why you want a refund.")
        return redirect("refund-start", number=order.number)
    prefetch_related_objects([order], "items")  # shop and buyer came with it
    file_errors: list[str] = []
    if request.method == "POST":
        form = DetailsForm(request.POST, order=order)
        refund_draft_remove_files(draft=draft, tokens=set(request.POST.getlist("remove_file")))
        file_errors = refund_draft_add_files(draft=draft, uploads=request.FILES.getlist("evidence"))
        if form.is_valid():
            draft.amount = form.cleaned_data["amount"].strip()
            draft.return_item = form.cleaned_data["return_item"] == "yes"
            draft.description = form.cleaned_data["description"]
            draft.items = {str(k): v for k, v in form.item_quantities().items()}
            try:
                refund_draft_validate(draft=draft, order=order, buyer=user, now=timezone.now())
            except DomainError as exc:
                draft.amount = ""  # step 4 stays closed until the details pass
                if exc.fields and "reason" in exc.fields:
                    # The window closed since step 2: say so where the reason is chosen.
                    refund_draft_save(session=request.session, order=order, draft=draft)
                    messages.error(request, exc.message)
                    return redirect("refund-start", number=order.number)
                apply_domain_error(form, exc)
        else:
            draft.amount = ""
        refund_draft_save(session=request.session, order=order, draft=draft)
        if draft.amount and not file_errors:
            return redirect("refund-review", number=order.number)
    else:
        form = DetailsForm(initial=_details_initial(draft, order), order=order)
    return render_page(
        request,
        "refunds/request_details.html",
        {
            "order": order,
            "form": form,
            "reason_label": Reason(draft.reason).label,
            "files": draft.files,
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
    draft = refund_draft_get(session=request.session, order=order)
    if not draft.reason:
        return redirect("refund-start", number=order.number)
    if not draft.amount:
        return redirect("refund-details", number=order.number)
    prefetch_related_objects([order], "items")  # shop and buyer came with it
    error = ""
    now = timezone.now()
    if request.method == "POST":
        try:
            case, refused = refund_draft_submit(
                session=request.session, order=order, buyer=user, now=now
            )
        except DomainError as exc:
            error = exc.message
        else:
            for name, why in refused:
                messages.warning(
                    request, f"“{name}” was not attached: {why} You can add another file below."
                )
            messages.success(
                request,
                f"Refund request filed. {order.shop.name} has until {both_zones(case.respond_by)} "
                "to answer; with no answer by then it is accepted automatically.",
            )
            return redirect("case-detail", case_id=case.public_id)
    items = {i.pk: i for i in order.items.all()}
    chosen = [(items[int(k)], v) for k, v in draft.items.items() if int(k) in items]
    window = services.refund_window(order=order, reason=draft.reason)
    return render_page(
        request,
        "refunds/request_review.html",
        {
            "order": order,
            "draft": draft,
            "reason_label": Reason(draft.reason).label,
            "window_closes": window.closes_at if window else None,
            "chosen_items": chosen,
            "files": draft.files,
            "respond_by": windows.respond_by(filed_at=now),
            "error": error,
            "steps": _steps(4, order, draft),
        },
        nav="orders",
        status=400 if error else 200,
    )


# --- the case page -------------------------------------------------------------------------------

# The case page's input for the actions that take some; every other part of an action (its
# party, service and message) is its declaration in `refunds.rules.CASE_ACTIONS`.
ACTION_FORMS: dict[str, type[PortalForm]] = {
    "offer": OfferForm,
    "reject": RejectForm,
    "ship-return": ShipReturnForm,
}


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
    available = {a["action"]: a["until"] for a in refund_actions(case=case, user=user, now=now)}
    forms = forms or {}
    dispute = _dispute_of(case)
    can_message = role in ("buyer", "seller") and case.state != State.ESCALATED
    can_upload = role in ("buyer", "seller", "staff")
    context = {
        "case": case,
        "order": case.order,
        "role": role,
        "available": available,
        "items": refund_items(case=case),
        "timeline": refund_timeline_entries(case=case),
        "thread": list(refund_messages(case=case)),
        "evidence": list(refund_evidence(case=case, for_dispute=False)),
        "dispute": dispute,
        "chargeback": chargeback_open_for_order(order_id=case.order_id),
        "dispute_open": _can_dispute(case, now),
        "can_dispute": role == "buyer" and _can_dispute(case, now),
        "payout_expected": windows.payout_target(approved_at=case.approved_at)
        if case.state == State.REFUND_PENDING and case.approved_at
        else None,
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
    return case_page_read(user=_user(request), public_id=case_id)


@login_required
@require_GET
def case_detail(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    return _case_page(request, _case_for(request, case_id))


@login_required
@require_POST
def case_action(request: HttpRequest, case_id: uuid.UUID, action: str) -> HttpResponse:
    case = _case_for(request, case_id)
    declared = ACTION_OF_NAME[action]
    user = _user(request)
    # Whose action it is is answered before the form is judged, as the API does.
    if (refusal := refund_party_refusal(case=case, user=user, party=declared.party)) is not None:
        return _case_page(request, case, action_error=(action, refusal.message), status=400)
    kwargs: dict[str, Any] = {}
    form = None
    if (form_class := ACTION_FORMS.get(action)) is not None:
        form = form_class(request.POST)
        if not form.is_valid():
            return _case_page(request, case, forms={action: form}, status=400)
        kwargs = dict(form.cleaned_data)
    try:
        declared.run(case=case, actor=user, **kwargs)
    except DomainError as exc:
        if form is not None:
            apply_domain_error(form, exc)
            return _case_page(request, case, forms={action: form}, status=400)
        return _case_page(request, case, action_error=(action, exc.message), status=400)
    messages.success(request, declared.message)
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
            "items": refund_items(case=case),
        },
    )
