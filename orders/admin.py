"""The staff desk for accounts, orders and payouts (SPEC §1).

Orders arrive from the marketplace and change state only through services, payouts move only
through `payout_retry` / `payout_cancel`, and the audit trail is never edited: those pages are
read-only. Every changelist joins what it shows (`list_select_related`), so a page of 100 rows
costs the same queries as a page of 10.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import services
from .errors import DomainError
from .models import Event, GatewayRefund, Message, Order, OrderItem, Payout, Shop, User
from .money import format_money

# --- accounts -----------------------------------------------------------------------------------


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name", "time_zone")
        field_classes: dict[str, Any] = {}

    def clean_email(self) -> str:
        # Accounts are found by email in lower case (services.user_get_or_create).
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise self.instance.unique_error_message(User, ["email"])
        return email


class UserChangeForm(DjangoUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes: dict[str, Any] = {}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("email",)
    list_display = ("email", "name", "time_zone", "is_staff", "is_marketplace", "is_active")
    list_filter = ("is_staff", "is_marketplace", "is_superuser", "is_active")
    search_fields = ("email", "name")
    readonly_fields = ("public_id", "last_login", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "password", "public_id")}),
        (_("Profile"), {"fields": ("name", "time_zone")}),
        (
            _("Permissions"),
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_marketplace",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                ),
            },
        ),
        (_("Dates"), {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "name",
                    "time_zone",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )


class ShopAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "owner", "return_policy", "created_at")
    list_select_related = ("owner",)
    search_fields = ("slug", "name", "owner__email")
    raw_id_fields = ("owner",)

    def get_readonly_fields(self, request: HttpRequest, obj: Shop | None = None) -> tuple[str, ...]:
        # Only the owner changes the return policy (services.shop_set_return_policy).
        return ("owner", "return_policy", "created_at", "updated_at") if obj else ()


admin.site.register(Shop, ShopAdmin)


# --- read-only building blocks ------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by staff with the view permission; nobody (not even a superuser) edits it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- orders -------------------------------------------------------------------------------------


class OrderItemInline(ReadOnlyInline):
    model = OrderItem
    fields = ("sku", "title", "quantity", "unit_price_display", "line_total_display")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderItem]:
        return super().get_queryset(request).select_related("order")

    @admin.display(description="unit price")
    def unit_price_display(self, item: OrderItem) -> str:
        return format_money(item.unit_price, item.order.currency)

    @admin.display(description="line total")
    def line_total_display(self, item: OrderItem) -> str:
        return format_money(item.line_total, item.order.currency)


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


class EventInline(ReadOnlyInline):
    model = Event
    fields = ("created_at", "kind", "from_state", "to_state", "actor", "note")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("actor")


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("created_at", "author", "body")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("author")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Orders come from the marketplace feed and change state through services only."""

    list_display = (
        "number",
        "status",
        "buyer_email",
        "shop",
        "total_display",
        "refundable_display",
        "payment_method_label",
        "placed_at",
    )
    list_filter = ("status", "payment_method", "currency")
    list_select_related = ("buyer", "shop")
    search_fields = ("number", "buyer__email", "shop__owner__email", "payment_reference")
    date_hierarchy = "placed_at"
    inlines = (OrderItemInline, PayoutInline, EventInline, MessageInline)
    fieldsets = (
        (None, {"fields": ("number", "status", "buyer", "shop", "placed_at", "deliver_by")}),
        (
            _("Money"),
            {
                "fields": (
                    "total_display",
                    "reserved_display",
                    "refundable_display",
                    "payment_method",
                    "payment_method_label",
                    "payment_reference",
                )
            },
        ),
        (_("Shipping"), {"fields": ("shipped_at", "carrier", "tracking_number", "delivered_at")}),
        (_("Cancellation"), {"fields": ("cancelled_at", "cancel_reason")}),
        (_("Policy and dates"), {"fields": ("return_policy", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "number",
        "status",
        "buyer",
        "shop",
        "placed_at",
        "deliver_by",
        "total_display",
        "reserved_display",
        "refundable_display",
        "payment_method",
        "payment_method_label",
        "payment_reference",
        "shipped_at",
        "carrier",
        "tracking_number",
        "delivered_at",
        "cancelled_at",
        "cancel_reason",
        "return_policy",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).select_related("buyer", "shop", "shop__owner")

    @admin.display(description="buyer", ordering="buyer__email")
    def buyer_email(self, order: Order) -> str:
        return order.buyer.email

    @admin.display(description="total", ordering="total")
    def total_display(self, order: Order) -> str:
        return format_money(order.total, order.currency)

    @admin.display(description="reserved by payouts")
    def reserved_display(self, order: Order) -> str:
        return format_money(order.reserved, order.currency)

    @admin.display(description="refundable")
    def refundable_display(self, order: Order) -> str:
        return format_money(order.refundable, order.currency)

    @admin.display(description="payment method")
    def payment_method_label(self, order: Order) -> str:
        return order.payment_method_label


# --- payouts ------------------------------------------------------------------------------------


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
        return bool(user.is_active and user.is_staff and user.has_perm("orders.change_payout"))

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
    ) -> None:
        done, refused = 0, []
        for payout in queryset.order_by("pk"):
            try:
                service(payout=payout, actor=request.user)
            except DomainError as exc:
                refused.append(f"{payout.public_id}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} payout(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Retry failed payouts", permissions=["payout_desk"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, "Retried", services.payout_retry)

    @admin.action(
        description="Cancel failed payouts (release reservation)", permissions=["payout_desk"]
    )
    def cancel_failed(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        self._each(request, queryset, "Cancelled", services.payout_cancel)


# --- audit trail and the gateway's ledger -------------------------------------------------------


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The audit trail: nobody adds, changes or deletes a row by hand."""

    list_display = (
        "created_at",
        "order",
        "kind",
        "from_state",
        "to_state",
        "actor_label",
        "dispatched_at",
    )
    list_filter = ("kind",)
    list_select_related = ("order", "actor")
    search_fields = ("order__number", "kind")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "order",
        "kind",
        "from_state",
        "to_state",
        "actor",
        "case_id",
        "dispute_id",
        "note",
        "payload",
        "dispatched_at",
    )
    readonly_fields = fields

    @admin.display(description="actor")
    def actor_label(self, event: Event) -> str:
        return event.actor_label


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
