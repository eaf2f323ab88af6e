"""The staff desk for payouts: read-only rows that move only through `payout_retry`,
`payout_cancel` and `payout_mark_paid_outside`, and the fake gateway's own ledger. The order page
gains its payouts inline here, because `orders` does not know payouts exist
(docs/architecture.md)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from kernel.errors import DomainError
from kernel.money import format_money
from kernel.security import security_event
from kernel.signin import reauth_refusal
from kernel.text import TextCheckedForm
from orders.admin import OrderAdmin, ReadOnlyAdmin, ReadOnlyInline
from orders.models import Order, User

from . import services
from .gateway import stripe_dashboard_url
from .models import Chargeback, GatewayRefund, Payout, StripeEvent


class PaidOutsideForm(TextCheckedForm):
    """Where the money went and why: single-line reference, multi-line note (docs/rules.md,
    Text fields); the service judges them again, this form only shows its answers in place."""

    reference = forms.CharField(
        max_length=200,
        help_text="Where the money went: the PayPal transaction id, the bank transfer reference.",
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        max_length=5000,
        help_text="How and why it was paid outside the portal. Staff only; in the audit trail.",
    )


def stripe_link(stripe_id: str) -> str | SafeString:
    """A Stripe id as a link to it in Stripe's dashboard, where it has one there."""
    url = stripe_dashboard_url(stripe_id)
    if url is None:
        return stripe_id
    return format_html(
        '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a> (Stripe dashboard)',
        url,
        stripe_id,
    )


class PayoutInline(ReadOnlyInline):
    model = Payout
    fields = (
        "public_id",
        "amount_display",
        "purpose",
        "status",
        "attempts",
        "failure_reason",
        "created_at",
        "succeeded_at",
    )
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="amount")
    def amount_display(self, payout: Payout) -> str:
        return format_money(payout.amount, payout.currency)


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    """Payouts move only through the services: retried (same row and key) or cancelled."""

    list_display = (
        "public_id",
        "order_number",
        "amount_display",
        "payment_method_label",
        "purpose",
        "status",
        "attempts",
        "failure_reason",
        "created_at",
        "succeeded_at",
    )
    list_filter = ("status", "purpose", "payment_method")
    list_select_related = ("order",)
    search_fields = ("order__number", "idempotency_key", "payment_reference", "order__buyer__email")
    actions = ("retry_failed", "cancel_failed", "mark_paid_outside")
    readonly_fields = (
        "public_id",
        "order",
        "amount_display",
        "payment_method",
        "payment_method_label",
        "payment_reference",
        "idempotency_key",
        "purpose",
        "subject_id",
        "gateway_reference_display",
        "status",
        "attempts",
        "failure_reason",
        "failure_definite",
        "gateway_key",
        "next_attempt_at",
        "claimed_until",
        "held_at",
        "succeeded_at",
        "paid_outside_reference",
        "paid_outside_note",
        "paid_outside_by",
        "overdue_alerted_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    def has_payout_desk_permission(self, request: HttpRequest) -> bool:
        # Payouts are not editable, but retrying or cancelling one is "changing" it.
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm("payouts.change_payout"))

    @admin.display(description="order", ordering="order__number")
    def order_number(self, payout: Payout) -> str:
        return payout.order.number

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, payout: Payout) -> str:
        return format_money(payout.amount, payout.currency)

    @admin.display(description="paid back to")
    def payment_method_label(self, payout: Payout) -> str:
        return payout.order.payment_method_label

    @admin.display(description="gateway reference")
    def gateway_reference_display(self, payout: Payout) -> str | SafeString:
        return stripe_link(payout.gateway_reference)

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Payout], verb: str, service: Any
    ) -> HttpResponse | None:
        # Retrying or cancelling a payout moves money: the password again when it was given too
        # long ago (docs/architecture.md, Accounts and security).
        if (stale := reauth_refusal(request)) is not None:
            return stale
        done, refused = 0, []
        for payout in queryset.order_by("pk"):
            try:
                service(payout=payout, actor=request.user)
            except DomainError as exc:
                refused.append(f"{payout.public_id}: {exc.message}")
            else:
                done += 1
                security_event(
                    "money_decision",
                    request=request,
                    decision=service.__name__,
                    payout=str(payout.public_id),
                    amount=str(payout.amount),
                    currency=payout.currency,
                )
        if done:
            self.message_user(request, f"{verb} {done} payout(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)
        return None

    @admin.action(description="Retry failed payouts", permissions=["payout_desk"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> HttpResponse | None:
        return self._each(request, queryset, "Retried", services.payout_retry)

    @admin.action(
        description="Cancel failed payouts (release reservation)", permissions=["payout_desk"]
    )
    def cancel_failed(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> HttpResponse | None:
        return self._each(request, queryset, "Cancelled", services.payout_cancel)

    # --- paid outside the portal ------------------------------------------------------------

    @admin.action(
        description="Mark paid outside the portal (one payout)", permissions=["payout_desk"]
    )
    def mark_paid_outside(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> HttpResponse | None:
        # One payout at a time: each has its own reference and note. The form asks for the
        # password again when needed, before anything is shown.
        chosen = list(queryset.values_list("pk", flat=True)[:2])
        if len(chosen) != 1:
            self.message_user(
                request,
                "Choose exactly one payout to mark paid outside the portal.",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(reverse("admin:payouts_payout_paid_outside", args=chosen))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/paid-outside/",
                self.admin_site.admin_view(self.paid_outside_view),
                name="payouts_payout_paid_outside",
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Payout | None = None,
    ) -> HttpResponse:
        # The desk offers the form only when the service's rule would allow it.
        context["paid_outside_url"] = (
            reverse("admin:payouts_payout_paid_outside", args=[obj.pk])
            if obj is not None
            and self.has_payout_desk_permission(request)
            and services.payout_mark_paid_outside_refusal(payout=obj, actor=_user(request)) is None
            else None
        )
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def paid_outside_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_payout_desk_permission(request):
            raise PermissionDenied
        # Marking a payout paid settles a case: the password again when it was given too long
        # ago (docs/architecture.md, Accounts and security).
        if (stale := reauth_refusal(request)) is not None:
            return stale
        payout = self.get_object(request, unquote(object_id))
        if payout is None:
            raise Http404("No such payout.")
        change_url = reverse("admin:payouts_payout_change", args=[payout.pk])
        form = PaidOutsideForm(request.POST if request.method == "POST" else None)
        refusal = services.payout_mark_paid_outside_refusal(payout=payout, actor=_user(request))
        if request.method == "POST" and form.is_valid():
            try:
                paid = services.payout_mark_paid_outside(
                    payout=payout,
                    actor=_user(request),
                    reference=form.cleaned_data["reference"],
                    note=form.cleaned_data["note"],
                )
            except DomainError as exc:
                known = {k: v for k, v in (exc.fields or {}).items() if k in form.fields}
                for field, errors in known.items():
                    form.add_error(field, errors)
                if not known:
                    form.add_error(None, exc.message)
            else:
                security_event(
                    "money_decision",
                    request=request,
                    decision="payout_mark_paid_outside",
                    payout=str(paid.public_id),
                    amount=str(paid.amount),
                    currency=paid.currency,
                )
                self.message_user(
                    request,
                    f"Marked {format_money(paid.amount, paid.currency)} paid outside the portal.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Mark paid outside the portal",
            "original": payout,
            "form": form,
            "refusal": refusal.message if refusal is not None else "",
            "summary": [
                ("Order", f"{payout.order.number} ({payout.order.payment_method_label})"),
                ("Amount", format_money(payout.amount, payout.currency)),
                ("Status", payout.get_status_display()),
                ("Why it is not paid", payout.failure_reason or "—"),
            ],
            "change_url": change_url,
            "submit_label": "Mark paid outside the portal",
        }
        return TemplateResponse(request, "admin/payouts/payout/paid_outside.html", context)


def _user(request: HttpRequest) -> User:
    # The admin site lets only active staff in (admin_view): never anonymous here.
    return cast(User, request.user)


@admin.register(GatewayRefund)
class GatewayRefundAdmin(ReadOnlyAdmin):
    """The fake gateway's own ledger: what it refunded, once per idempotency key."""

    list_display = (
        "reference",
        "idempotency_key",
        "payment_reference",
        "amount_display",
        "status",
        "calls",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("reference", "idempotency_key", "payment_reference")
    fields = (
        "reference",
        "idempotency_key",
        "payment_reference",
        "amount_display",
        "status",
        "calls",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, refund: GatewayRefund) -> str:
        return format_money(refund.amount, refund.currency)


@admin.register(Chargeback)
class ChargebackAdmin(ReadOnlyAdmin):
    """Chargebacks as Stripe reported them; they move only by Stripe's webhooks (docs/rules.md,
    Chargebacks). Staff find here the dispute to answer in Stripe's dashboard."""

    list_display = (
        "stripe_dispute_display",
        "order_number",
        "amount_display",
        "reason",
        "status",
        "opened_at",
        "closed_at",
    )
    list_filter = ("status", "reason")
    list_select_related = ("order",)
    search_fields = ("stripe_dispute_id", "order__number", "order__payment_reference")
    readonly_fields = (
        "stripe_dispute_display",
        "order",
        "amount_display",
        "reason",
        "status",
        "stripe_status",
        "opened_at",
        "closed_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description="Stripe dispute", ordering="stripe_dispute_id")
    def stripe_dispute_display(self, chargeback: Chargeback) -> str | SafeString:
        return stripe_link(chargeback.stripe_dispute_id)

    @admin.display(description="order", ordering="order__number")
    def order_number(self, chargeback: Chargeback) -> str:
        return chargeback.order.number

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, chargeback: Chargeback) -> str:
        return format_money(chargeback.amount, chargeback.currency)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    """Every Stripe event received, once per id, and what handling it did: where staff look
    when Stripe's dashboard says an event was delivered."""

    list_display = ("event_id", "type", "object_id", "outcome", "created", "received_at")
    list_filter = ("type", "outcome")
    search_fields = ("event_id", "object_id")
    fields = ("event_id", "type", "object_id", "outcome", "created", "received_at")
    readonly_fields = fields


# The order page lists its payouts between the items and the audit trail.
admin.site.unregister(Order)


@admin.register(Order)
class OrderWithPayoutsAdmin(OrderAdmin):
    inlines = (*OrderAdmin.inlines[:1], PayoutInline, *OrderAdmin.inlines[1:])
