"""Pages: the user's notices (`/notifications/`) and the staff preview of every email."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp_replace, csp_update
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from notifications import services
from notifications.catalog import sample_payload, told_kinds
from notifications.models import Notification
from notifications.selectors import notification_list_for_user, notifications_with_headlines
from orders.models import User
from portal.paging import first_page_or_paginate

PAGE_SIZE = 25


def _back(request: HttpRequest) -> HttpResponseRedirect:
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("notifications:list")
    return HttpResponseRedirect(target)


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    unread_only = request.GET.get("unread") == "1"
    notifications = notification_list_for_user(user=request.user, unread_only=unread_only)
    page = first_page_or_paginate(notifications, request.GET.get("page"), PAGE_SIZE)
    items = notifications_with_headlines(notifications=page.object_list, user=request.user)
    return render(
        request,
        "notifications/list.html",
        {
            "page_obj": page,
            "items": items,
            "unread_only": unread_only,
            "nav": "notifications",
        },
    )


@login_required
@require_POST
def notification_read(request: HttpRequest, public_id: UUID) -> HttpResponse:
    try:
        services.notification_mark_read(user=request.user, notification_id=public_id)  # type: ignore[arg-type]
    except Notification.DoesNotExist as exc:
        raise Http404("No such notification.") from exc
    return _back(request)


@login_required
@require_POST
def notification_read_all(request: HttpRequest) -> HttpResponse:
    services.notification_mark_all_read(user=request.user)  # type: ignore[arg-type]
    return _back(request)


def _sample_recipient(role: str) -> User:
    # Unsaved accounts in the personas' zones, so the preview shows both zones as sent.
    zones = {"buyer": "Europe/Berlin", "seller": "America/Los_Angeles", "staff": "UTC"}
    return User(
        email=f"{role}@example.com", name=f"Sample {role.title()}", time_zone=zones.get(role, "UTC")
    )


def _preview(kind: str, role: str) -> dict[str, Any]:
    payload = sample_payload(kind)
    link = services.notification_link(kind=kind, role=role, payload=payload)
    rendered = services.render_email(
        services.notification_context(
            kind=kind,
            role=role,
            payload=payload,
            link=link,
            recipient=_sample_recipient(role),
        )
    )
    return {
        "kind": kind,
        "role": role,
        "rendered": rendered,
        "own_template": services.template_exists(kind),
    }


def _staff_only(request: HttpRequest) -> None:
    if not (request.user.is_authenticated and request.user.is_staff):
        raise Http404


@require_GET
@csp_update({"frame-src": [SELF]})
def notification_preview(request: HttpRequest) -> HttpResponse:
    """Staff only (others: 404): every email template rendered with sample data.

    Each email's HTML is shown in a sandboxed frame loaded from `notification_preview_email`:
    an inline frame (`srcdoc`) would inherit this page's Content-Security-Policy, which blocks
    the inline styles every email needs (docs/architecture.md, Browser policies).
    """
    _staff_only(request)
    wanted = request.GET.get("kind") or ""
    told = told_kinds()
    kinds = [wanted] if wanted else [*told, "unknown.kind"]
    previews = [_preview(kind, role) for kind in kinds for role in told.get(kind) or ("buyer",)]
    return render(
        request, "notifications/preview.html", {"previews": previews, "nav": "notifications"}
    )


@require_GET
@xframe_options_sameorigin
@csp_replace(
    {
        # An email, not a page: no script at all, its own inline styles, and a sandbox that
        # gives it no origin; only the preview page may frame it.
        "script-src": [NONE],
        "style-src": [UNSAFE_INLINE],
        "connect-src": [NONE],
        "form-action": [NONE],
        "frame-ancestors": [SELF],
        "sandbox": [True],
    }
)
def notification_preview_email(request: HttpRequest) -> HttpResponse:
    """Staff only (others: 404): the HTML of one email (`?kind=…&role=…`) as it is sent."""
    _staff_only(request)
    role = request.GET.get("role") or "buyer"
    if role not in ("buyer", "seller", "staff"):
        raise Http404
    return HttpResponse(_preview(request.GET.get("kind") or "unknown.kind", role)["rendered"].html)
