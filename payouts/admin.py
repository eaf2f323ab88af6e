"""The staff desk for payouts: read-only rows that move only through `payout_retry` and
`payout_cancel`, and the fake gateway's own ledger. The order page gains its payouts inline here,
because `orders` does not know payouts exist (docs/architecture.md)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from kernel.errors import DomainError
from kernel.money import format_money
from kernel.security import security_event
from kernel.signin import reauth_refusal
from orders.admin import OrderAdmin, ReadOnlyAdmin, ReadOnlyInline
from orders.models import Order

from . import services
from .models import GatewayRefund, Payout


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
    actions = ("retry_failed", "cancel_failed")
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
        "gateway_reference",
        "status",
        "attempts",
        "failure_reason",
        "failure_definite",
        "gateway_key",
        "next_attempt_at",
        "claimed_until",
        "succeeded_at",
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


# The order page lists its payouts between the items and the audit trail.
admin.site.unregister(Order)


@admin.register(Order)
class OrderWithPayoutsAdmin(OrderAdmin):
    inlines = (*OrderAdmin.inlines[:1], PayoutInline, *OrderAdmin.inlines[1:])
