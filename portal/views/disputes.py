"""Pages of disputes, and the seller dashboard.

Thin interfaces over `disputes.services` and the selectors that take the user: a dispute the user
may not see is a 404, every action is a POST with CSRF, and a `DomainError` becomes a form error
next to its field.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from api.throttling import throttle_post
from disputes import services
from disputes.models import Dispute, DisputeState
from disputes.rules import dispute_actions, dispute_role
from disputes.selectors import (
    dispute_case_evidence,
    dispute_evidence,
    dispute_get_for_user,
    dispute_messages,
    dispute_transcript,
    seller_dashboard_read,
)
from kernel.errors import DomainError
from kernel.money import format_amount
from orders.models import User
from payouts.selectors import chargeback_open_for_order
from portal.forms.base import apply_domain_error
from portal.forms.disputes import (
    DISPUTE_FILE_KINDS,
    DisputeEvidenceForm,
    DisputeOpenForm,
    StatementForm,
)
from portal.forms.refunds import CaseMessageForm
from portal.selectors import case_page_read
from portal.views.pages import render_page
from refunds.models import RefundCase
from refunds.rules import refund_dispute_refusal
from refunds.timeline import refund_timeline_entries


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


# --- opening a dispute ---------------------------------------------------------------------------


def _full_amount(case: RefundCase) -> str:
    return format_amount(min(case.amount, case.order.refundable), case.currency)


def _why_not(case: RefundCase, now: Any) -> str:
    """Why no dispute can be opened on this case now, in plain words ("" if it can)."""
    if getattr(case, "dispute", None) is not None:
        return "This refund case already has a dispute."
    refusal = refund_dispute_refusal(case=case, user=case.order.buyer, now=now)
    return refusal.message if refusal is not None else ""


@login_required
@require_http_methods(["GET", "POST"])
@throttle_post("dispute_filing")
def dispute_new(request: HttpRequest, case_id: uuid.UUID) -> HttpResponse:
    """The dispute form of docs/rules.md (Disputes); the files are attached right after the dispute
    opens."""
    user = _user(request)
    # The case with its dispute joined (one query): `existing` and `_why_not` read it.
    case = case_page_read(user=user, public_id=case_id)
    if case.order.buyer_id != user.pk:
        raise PermissionDenied("Only the buyer can open a dispute.")
    existing = getattr(case, "dispute", None)
    if existing is not None:
        return redirect("dispute-detail", dispute_id=existing.public_id)
    full = _full_amount(case)
    now = timezone.now()
    if request.method == "POST":
        form = DisputeOpenForm(request.POST, full_amount=full)
        if form.is_valid():
            data = form.cleaned_data
            try:
                dispute = services.dispute_open(
                    case=case,
                    buyer=user,
                    statement=data["statement"],
                    contact_name=data["contact_name"],
                    contact_email=data["contact_email"],
                    contact_phone=data["contact_phone"],
                    desired_amount=data["desired_amount"],
                )
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                _attach_files(request, dispute, user)
                messages.success(
                    request,
                    "Dispute opened. The seller has 48 hours to give their side; our staff "
                    "then decide. We email you at every step.",
                )
                return redirect("dispute-detail", dispute_id=dispute.public_id)
    else:
        form = DisputeOpenForm(
            full_amount=full,
            initial={
                "contact_name": user.name,
                "contact_email": user.email,
                "outcome": "full",
            },
        )
    return render_page(
        request,
        "disputes/new.html",
        {
            "case": case,
            "order": case.order,
            "form": form,
            "full_amount": full,
            "file_kinds": DISPUTE_FILE_KINDS,
            "why_not": _why_not(case, now),
        },
        nav="orders",
        status=400 if form.errors else 200,
    )


def _attach_files(request: HttpRequest, dispute: Dispute, user: User) -> None:
    """Each proof the form carried; a refused file is named with its reason, the dispute stands."""
    for kind, label in DISPUTE_FILE_KINDS:
        for upload in request.FILES.getlist(f"file_{kind}"):
            try:
                services.dispute_add_evidence(dispute=dispute, actor=user, upload=upload, kind=kind)
            except DomainError as exc:
                messages.warning(
                    request,
                    f"{label}: “{upload.name}” was not attached: "
                    f"{exc.message} You can add another file below.",
                )


# --- the dispute page ----------------------------------------------------------------------------


def _dispute_page(
    request: HttpRequest,
    dispute: Dispute,
    *,
    forms: dict[str, Any] | None = None,
    action_error: str = "",
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    role = dispute_role(dispute=dispute, user=user)
    now = timezone.now()
    forms = forms or {}
    case = dispute.case
    actions = dispute_actions(dispute=dispute, user=user, now=now)
    context = {
        "dispute": dispute,
        "case": case,
        "order": case.order,
        "role": role,
        "actions": actions,
        "chargeback": chargeback_open_for_order(order_id=case.order_id),
        "asked_me": dispute.state == DisputeState.INFO_REQUESTED and dispute.info_party == role,
        "messages_list": list(dispute_messages(dispute=dispute)),
        "thread": list(dispute_transcript(dispute=dispute)),
        "evidence": list(dispute_evidence(dispute=dispute)),
        "case_evidence": list(dispute_case_evidence(dispute=dispute)),
        "timeline": refund_timeline_entries(case=case),
        "statement_form": forms.get("statement") or StatementForm(),
        "message_form": forms.get("message") or CaseMessageForm(),
        "evidence_form": forms.get("evidence") or DisputeEvidenceForm(),
        "action_error": action_error,
        "statement_open": dispute.seller_statement_at is None and now <= dispute.statement_by,
    }
    return render_page(request, "disputes/detail.html", context, nav="orders", status=status)


def _dispute_for(request: HttpRequest, dispute_id: uuid.UUID) -> Dispute:
    return dispute_get_for_user(user=_user(request), public_id=dispute_id)


@login_required
@require_GET
def dispute_detail(request: HttpRequest, dispute_id: uuid.UUID) -> HttpResponse:
    return _dispute_page(request, _dispute_for(request, dispute_id))


def _back(dispute: Dispute, anchor: str = "") -> HttpResponse:
    return redirect(reverse("dispute-detail", args=[dispute.public_id]) + anchor)


@login_required
@require_POST
@throttle_post("messages")
def dispute_statement(request: HttpRequest, dispute_id: uuid.UUID) -> HttpResponse:
    dispute = _dispute_for(request, dispute_id)
    form = StatementForm(request.POST)
    if form.is_valid():
        try:
            services.dispute_add_statement(
                dispute=dispute, seller=_user(request), body=form.cleaned_data["body"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, "Your statement is on file. Staff will read it.")
            return _back(dispute)
    return _dispute_page(request, dispute, forms={"statement": form}, status=400)


@login_required
@require_POST
@throttle_post("messages")
def dispute_message(request: HttpRequest, dispute_id: uuid.UUID) -> HttpResponse:
    dispute = _dispute_for(request, dispute_id)
    form = CaseMessageForm(request.POST)
    answering = dispute.state == DisputeState.INFO_REQUESTED
    if form.is_valid():
        try:
            services.dispute_post_message(
                dispute=dispute, author=_user(request), body=form.cleaned_data["body"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            if answering and dispute.info_party == dispute_role(
                dispute=dispute, user=_user(request)
            ):
                messages.success(
                    request, "Thank you — your answer went to our staff and the review carries on."
                )
            else:
                messages.success(request, "Message sent.")
            return _back(dispute, "#messages")
    return _dispute_page(request, dispute, forms={"message": form}, status=400)


@login_required
@require_POST
@throttle_post("uploads")
def dispute_evidence_add(request: HttpRequest, dispute_id: uuid.UUID) -> HttpResponse:
    dispute = _dispute_for(request, dispute_id)
    form = DisputeEvidenceForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            services.dispute_add_evidence(
                dispute=dispute, actor=_user(request), upload=upload, kind=form.cleaned_data["kind"]
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, f"“{upload.name}” is attached to the dispute.")
            return _back(dispute, "#evidence")
    return _dispute_page(request, dispute, forms={"evidence": form}, status=400)


@login_required
@require_POST
def dispute_withdraw(request: HttpRequest, dispute_id: uuid.UUID) -> HttpResponse:
    dispute = _dispute_for(request, dispute_id)
    try:
        services.dispute_withdraw(dispute=dispute, buyer=_user(request))
    except DomainError as exc:
        return _dispute_page(request, dispute, action_error=exc.message, status=400)
    messages.success(request, "Dispute withdrawn. The case is closed.")
    return _back(dispute)


# --- the seller dashboard ------------------------------------------------------------------------


@login_required
@require_GET
def seller_dashboard(request: HttpRequest) -> HttpResponse:
    """What needs the seller now, soonest deadline first, with counts per kind."""
    board = seller_dashboard_read(user=_user(request))
    if not board.shops:
        return render_page(request, "sellers/no_shop.html", nav="seller")
    return render_page(request, "sellers/dashboard.html", {"board": board}, nav="seller")
