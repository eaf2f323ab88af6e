"""The staff desk for accounts and orders (docs/rules.md, Who uses it).

Orders arrive from the marketplace and change state only through services, and the audit trail
is never edited: those pages are read-only (payouts have their desk in `payouts.admin`). Every
changelist joins what it shows (`list_select_related`), so a page of 100 rows costs the same
queries as a page of 10.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from kernel.money import format_money

from . import services
from .models import ApiToken, Event, Message, Order, OrderItem, Shop, User

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
    inlines: ClassVar[tuple[type[ReadOnlyInline], ...]] = (
        OrderItemInline,
        EventInline,
        MessageInline,
    )
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


# --- audit trail -------------------------------------------------------------------------------


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


# --- API keys -----------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Every account's API keys, by prefix (the key itself is never stored). Staff revoke any key
    here; keys are issued by their owners (`/api/v1/tokens/`) or by an operator
    (`manage.py api_token_issue`), the only places a key can be shown once."""

    list_display = (
        "prefix",
        "name",
        "user",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__email")
    ordering = ("-created_at",)
    fields = list_display
    readonly_fields = list_display
    actions = ["revoke"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_apitoken")

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(
            services.api_token_revoke(
                token=token,
                actor=request.user,  # type: ignore[arg-type]
                via_token=None,
                how="admin",
                request=request,
            )
            for token in queryset.select_related("user")
        )
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)
