"""The landing page, the seller's return policy and public reputation, and `render_page`.

Every page here is a thin interface over services and selectors.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from disputes.reputation import seller_reputation
from kernel import windows
from kernel.errors import DomainError
from orders.models import Shop, User
from orders.services import shop_set_return_policy
from portal.forms.base import ReturnPolicyForm, apply_domain_error


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    nav: str = "",
    status: int = 200,
) -> HttpResponse:
    """`render` plus which header tab is current (whether to link the seller dashboard comes
    from `portal.context_processors.header`, so every page has it)."""
    return render(request, template, {"nav": nav, **(context or {})}, status=status)


def _duration_words(value: timedelta) -> str:
    minutes = int(value.total_seconds()) // 60
    if minutes % 1440 == 0 and minutes >= 1440 * 3:
        days = minutes // 1440
        return f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def home(request: HttpRequest) -> HttpResponse:
    """The protection windows in plain words, with the numbers the system enforces."""
    w = windows.window
    context = {
        "instant_cancel": _duration_words(w("instant_cancel")),  # type: ignore[arg-type]
        "change_of_mind_days": w("change_of_mind_days"),
        "guarantee_days": w("guarantee_days"),
        "seller_response": _duration_words(w("seller_response")),  # type: ignore[arg-type]
        "return_shipping_days": w("return_shipping_days"),
        "return_confirmation_days": w("return_confirmation_days"),
        "offer_answer": _duration_words(w("offer_answer")),  # type: ignore[arg-type]
        "dispute_filing": _duration_words(w("dispute_filing")),  # type: ignore[arg-type]
        "seller_statement": _duration_words(w("seller_statement")),  # type: ignore[arg-type]
        "decision_target": w("decision_target_business_days"),
        "decision_due": w("decision_due_business_days"),
        "policy_min": _duration_words(w("return_policy_min")),  # type: ignore[arg-type]
        "policy_max": _duration_words(w("return_policy_max")),  # type: ignore[arg-type]
        "policy_default": _duration_words(w("return_policy_default")),  # type: ignore[arg-type]
        "marketplace_tz": windows.marketplace_tz().key,
    }
    return render_page(request, "home.html", context, nav="home")


def _owned_shop(user: User, slug: str | None) -> Shop:
    shops = Shop.objects.filter(owner=user).order_by("id")
    shop = shops.filter(slug=slug).first() if slug else shops.first()
    if shop is None:
        raise Http404("You have no shop.")
    return shop


@login_required
@require_http_methods(["GET", "POST"])
def seller_policy(request: HttpRequest) -> HttpResponse:
    """The shop's change-of-mind return window (docs/rules.md, Seller return policy: 15 minutes … 30
    days)."""
    shop = _owned_shop(request.user, request.GET.get("shop") or request.POST.get("shop"))  # type: ignore[arg-type]
    if request.method == "POST":
        form = ReturnPolicyForm(request.POST)
        if form.is_valid():
            try:
                shop_set_return_policy(
                    shop=shop,
                    return_policy=form.duration(),
                    actor=request.user,  # type: ignore[arg-type]
                )
            except DomainError as exc:
                apply_domain_error(form, exc, rename={"return_policy": "number"})
            else:
                messages.success(
                    request,
                    f"Return policy saved: {windows.duration_words(shop.return_policy)} after "
                    "delivery. "
                    "Orders already placed keep the policy they were placed under.",
                )
                return redirect("seller-policy")
    else:
        form = ReturnPolicyForm(initial=ReturnPolicyForm.initial_for(shop.return_policy))
    low, high = ReturnPolicyForm.bounds()
    return render_page(
        request,
        "sellers/policy.html",
        {
            "shop": shop,
            "form": form,
            "current": windows.duration_words(shop.return_policy),
            "low": windows.duration_words(low),
            "high": windows.duration_words(high),
        },
        nav="seller",
        status=400 if form.errors else 200,
    )


def seller_public(request: HttpRequest, slug: str) -> HttpResponse:
    """Public reputation page (docs/rules.md, Seller reputation): anyone, signed in or not, may look
    a seller up."""
    shop = get_object_or_404(Shop.objects.select_related("owner"), slug=slug)
    return render_page(
        request, "sellers/reputation.html", {"shop": shop, "rep": seller_reputation(shop=shop)}
    )
