"""Orders JSON API (docs/api.md, Orders): input serializer → service → output serializer, nothing
more.

Every order is fetched through `orders.selectors` with the viewer, so an order the viewer may not
see is a 404; whether an action is the viewer's is decided by the service (403). Errors leave
through `orders.errors.api_exception_handler` in the one envelope of docs/api.md.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from . import rules, services, windows
from .errors import NotAllowed, ValidationFailed
from .models import Message, Order, OrderStatus, PaymentMethod, User
from .money import MoneyError, format_amount, is_currency, parse_amount
from .permissions import IsStaffOrMarketplace
from .selectors import order_get_for_user, order_list_for_user
from .throttling import PostRateThrottle

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY
# A marketplace clock a few minutes ahead is not an error; an order from the future is.
CLOCK_SKEW = timedelta(minutes=5)


# --- parsing ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class ExactJSONParser(JSONParser):
    """JSON whose fractional numbers become `Decimal` exactly as written, never a binary float.

    `"total": 59.90` is read as Decimal("59.90") and `0.30000000000000004` stays that (and is then
    refused as mis-scaled) instead of being rounded by a float on the way in (docs/rules.md, Money).
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc


def _flat_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as one level: `buyer.email`, `items[1].unit_price`."""
    out: dict[str, list[str]] = {}

    def add(key: str, messages: list[str]) -> None:
        out.setdefault(key or NON_FIELD, []).extend(messages)

    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == NON_FIELD and prefix:
                name = prefix
            elif isinstance(key, int):  # a list's errors by index
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flat_errors(value, name).items():
                add(k, v)
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            add(prefix, [str(item) for item in detail])
        else:
            for index, item in enumerate(detail):
                if item:
                    for k, v in _flat_errors(item, f"{prefix}[{index}]").items():
                        add(k, v)
    else:
        add(prefix, [str(detail)])
    return out


def _summary(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {messages[0]}" for name, messages in fields.items())


def validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    if not serializer.is_valid():
        fields = _flat_errors(serializer.errors)
        raise ValidationFailed(_summary(fields) or "Invalid input.", fields=fields)
    return dict(serializer.validated_data)


def _iso(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- fields -------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "decimal", "example": "59.90"})
class AmountInField(serializers.Field):
    """A string (or an exact JSON number); its scale is checked against the order's currency
    in the serializer's `validate`, where the currency is known."""

    default_error_messages = {
        "invalid": 'Send the amount as a string in the currency\'s minor unit, e.g. "59.90".',
    }

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, str | int | Decimal):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return str(value)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a naive time would be read in a guessed zone, so it is refused."""

    default_error_messages = {
        **serializers.DateTimeField.default_error_messages,
        "invalid": "Use ISO 8601, e.g. 2026-03-01T23:30:00+08:00.",
        "naive": "Include a time zone offset, e.g. 2026-03-01T23:30:00+08:00 or …Z.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if timezone.is_naive(parsed):
            self.fail("naive")
        return parsed.astimezone(UTC)


class UTCDateTimeField(serializers.DateTimeField):
    """Instants leave in UTC ("…Z") whatever zone the viewer's request activated (docs/api.md,
    Conventions)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(default_timezone=UTC, **kwargs)


@extend_schema_field({"type": "string", "format": "decimal", "example": "59.90"})
class MoneyOutField(serializers.Field):
    """An amount as a string with exactly the currency's decimals ("59.90", "1200" for JPY)."""

    def __init__(self, attr: str, **kwargs: Any) -> None:
        self.attr = attr
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj: Any) -> str:
        return format_amount(getattr(obj, self.attr), obj.currency)


class StrictSerializer(serializers.Serializer):
    """Unknown keys are an error: a misspelt `card_last_4` must not be dropped silently."""

    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        errors: dict[str, Any] = {str(name): ["Unknown field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not errors:
                raise
            detail = exc.detail if isinstance(exc.detail, Mapping) else {NON_FIELD: exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from exc
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --- input serializers --------------------------------------------------------------------------


class OrderPartyIn(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")


class OrderItemIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    title = serializers.CharField(max_length=200)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    unit_price = AmountInField()


class OrderIngestIn(StrictSerializer):
    # The number appears in URLs (/orders/{number}/), so it is kept to URL-safe characters.
    number = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        max_length=64,
        error_messages={"invalid": "Use letters, digits, '.', '_' and '-' only."},
    )
    buyer = OrderPartyIn()
    seller = OrderPartyIn()
    currency = serializers.CharField(max_length=3)
    total = AmountInField()
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    payment_reference = serializers.CharField(max_length=128)
    card_brand = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    card_last4 = serializers.CharField(required=False, allow_blank=True, default="")
    placed_at = AwareDateTimeField()
    deliver_by = AwareDateTimeField(required=False, allow_null=True, default=None)
    items = OrderItemIn(many=True, allow_empty=False, max_length=500)  # type: ignore[call-arg]

    def validate_currency(self, value: str) -> str:
        if not is_currency(value):
            raise serializers.ValidationError(f"{value!r} is not an ISO 4217 currency code.")
        return value

    def validate_card_last4(self, value: str) -> str:
        if value and not re.fullmatch(r"[0-9]{4}", value):
            raise serializers.ValidationError("Exactly the last four digits of the card.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        currency = attrs["currency"]
        try:
            attrs["total"] = parse_amount(attrs["total"], currency)
        except MoneyError as exc:
            errors["total"] = [str(exc)]
        for index, item in enumerate(attrs["items"]):
            try:
                # A free line (a gift) is fine; the total must still be positive.
                item["unit_price"] = parse_amount(item["unit_price"], currency, allow_zero=True)
            except MoneyError as exc:
                errors[f"items[{index}].unit_price"] = [str(exc)]
        if attrs["payment_method"] != PaymentMethod.CARD:
            for name in ("card_brand", "card_last4"):
                if attrs[name]:
                    errors[name] = ["Only card payments have a card brand and last four digits."]
        if attrs["buyer"]["email"].strip().lower() == attrs["seller"]["email"].strip().lower():
            errors["seller.email"] = ["The buyer and the seller must be different accounts."]
        if attrs["placed_at"] > timezone.now() + CLOCK_SKEW:
            errors["placed_at"] = ["This is in the future."]
        if attrs["deliver_by"] is not None and attrs["deliver_by"] < attrs["placed_at"]:
            errors["deliver_by"] = ["Must not be before placed_at."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class OrderShipIn(StrictSerializer):
    carrier = serializers.CharField(max_length=80)
    tracking_number = serializers.CharField(max_length=80)
    shipped_at = AwareDateTimeField(required=False, allow_null=True, default=None)


class OrderDeliverIn(StrictSerializer):
    delivered_at = AwareDateTimeField(required=False, allow_null=True, default=None)


class OrderMessageIn(StrictSerializer):
    body = serializers.CharField(max_length=5000)


# --- output serializers -------------------------------------------------------------------------


class OrderBuyerOut(serializers.Serializer):
    name = serializers.CharField()


class OrderShopOut(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class OrderItemOut(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.CharField(help_text='In the order\'s currency, e.g. "20.00".')
    line_total = serializers.CharField()


class OrderDeadlineOut(serializers.Serializer):
    until = UTCDateTimeField(required=False)


class OrderActionsOut(serializers.Serializer):
    """Present only when the viewer may do it now; `until` is its deadline when it has one."""

    cancel = OrderDeadlineOut(required=False)
    cancel_out_of_stock = OrderDeadlineOut(required=False)
    message = OrderDeadlineOut(required=False)
    ship = OrderDeadlineOut(required=False)
    deliver = OrderDeadlineOut(required=False)


def order_actions(
    *, order: Order, user: User, now: datetime, holds: Mapping[int, str]
) -> dict[str, dict[str, Any]]:
    """Every action whose rule does not refuse the viewer now, with its deadline when it has one;
    `holds` is `rules.order_cancel_holds` of (at least) this order."""
    refusals = {
        "cancel": rules.order_cancel_refusal(order=order, user=user, now=now, holds=holds),
        "cancel_out_of_stock": rules.order_cancel_out_of_stock_refusal(
            order=order, user=user, holds=holds
        ),
        "message": rules.order_message_refusal(order=order, user=user),
        "ship": rules.order_feed_refusal(order=order, user=user, event="ship"),
        "deliver": rules.order_feed_refusal(order=order, user=user, event="deliver"),
    }
    actions: dict[str, dict[str, Any]] = {
        name: {} for name, refusal in refusals.items() if refusal is None
    }
    if "cancel" in actions:
        actions["cancel"]["until"] = _iso(windows.instant_cancel_until(placed_at=order.placed_at))
    return actions


class OrderOut(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    currency = serializers.CharField()
    total = MoneyOutField("total")
    refundable = MoneyOutField("refundable")
    payment_method = serializers.ChoiceField(choices=PaymentMethod.choices)
    payment_method_label = serializers.CharField(help_text='e.g. "Visa ••4242"')
    placed_at = UTCDateTimeField()
    deliver_by = UTCDateTimeField(allow_null=True)
    shipped_at = UTCDateTimeField(allow_null=True)
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    delivered_at = UTCDateTimeField(allow_null=True)
    cancelled_at = UTCDateTimeField(allow_null=True)
    buyer = serializers.SerializerMethodField()
    shop = OrderShopOut()
    items = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    @extend_schema_field(OrderBuyerOut)
    def get_buyer(self, order: Order) -> dict[str, str]:
        # The seller sees who bought, not the buyer's email address.
        return {"name": order.buyer.display_name}

    @extend_schema_field(OrderItemOut(many=True))
    def get_items(self, order: Order) -> list[dict[str, Any]]:
        return [
            {
                "sku": item.sku,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price": format_amount(item.unit_price, order.currency),
                "line_total": format_amount(item.line_total, order.currency),
            }
            for item in order.items.all()
        ]

    @extend_schema_field({"type": "string", "enum": list(rules.ROLES)})
    def get_role(self, order: Order) -> str:
        return rules.order_role(order=order, user=self.context["user"])

    @extend_schema_field(OrderActionsOut)
    def get_actions(self, order: Order) -> dict[str, dict[str, Any]]:
        holds = self.context.get("cancel_holds")
        if holds is None:  # one order: its holds are read with it
            holds = rules.order_cancel_holds(orders=[order])
        return order_actions(
            order=order, user=self.context["user"], now=self.context["now"], holds=holds
        )


class OrderMessageAuthorOut(serializers.Serializer):
    name = serializers.CharField()


class OrderMessageOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    author = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    body = serializers.CharField()
    created_at = UTCDateTimeField()

    @extend_schema_field(OrderMessageAuthorOut)
    def get_author(self, message: Message) -> dict[str, str]:
        return {"name": message.author.display_name}

    # No enum here: other apps' "role" enums would collide with it in the schema's components.
    @extend_schema_field({"type": "string", "description": '"buyer" or "seller"'})
    def get_role(self, message: Message) -> str:
        return "buyer" if message.author_id == self.context["order"].buyer_id else "seller"


OrderErrorOut = inline_serializer(
    name="OrderErrorOut",
    fields={
        "error": inline_serializer(
            name="OrderErrorBodyOut",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
        ),
    },
)


def error_responses(*codes: int) -> dict[int, serializers.Serializer]:
    return dict.fromkeys(codes, OrderErrorOut)


# --- views --------------------------------------------------------------------------------------


# The helpers below are the API toolkit the other apps' api.py modules share.


def viewer(request: Request) -> User:
    # Every view requires authentication (DEFAULT_PERMISSION_CLASSES), so this is a real user.
    return cast(User, request.user)


def serializer_context(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request": request, "user": viewer(request), "now": timezone.now(), **extra}


def _order_detail(request: Request, number: str) -> Order:
    return order_get_for_user(user=viewer(request), number=number)


def _order_out(request: Request, number: str) -> dict[str, Any]:
    """The order as the viewer sees it now, read again after a service changed it."""
    return OrderOut(_order_detail(request, number), context=serializer_context(request)).data


class OrderFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(
        choices=[("buyer", "buyer"), ("seller", "seller")],
        method="filter_role",
        help_text="Only the orders the viewer bought (buyer) or sold (seller).",
    )
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)

    class Meta:
        model = Order
        fields = ["status", "role"]

    def filter_role(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        user = self.request.user
        if value == "buyer":
            return queryset.filter(buyer=user)
        return queryset.filter(shop__owner=user)


class OrderListCreateApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    filterset_class = OrderFilter

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [IsAuthenticated(), IsStaffOrMarketplace()]
        return [IsAuthenticated()]

    def get_queryset(self) -> QuerySet[Order]:
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        # One query for the page and one for all its items, however many orders it has.
        return order_list_for_user(user=viewer(self.request)).prefetch_related("items")

    @extend_schema(
        operation_id="orders_list",
        tags=["orders"],
        responses={200: OrderOut(many=True)},
        summary="Orders the viewer bought or sold (staff and the marketplace: all)",
    )
    def get(self, request: Request) -> Response:
        page = list(self.paginate_queryset(self.filter_queryset(self.get_queryset())) or [])
        # The page's cancel holds in one read, however many orders it has.
        holds = rules.order_cancel_holds(orders=page)
        data = OrderOut(page, many=True, context=serializer_context(request, cancel_holds=holds))
        return self.get_paginated_response(data.data)

    @extend_schema(
        operation_id="orders_ingest",
        tags=["orders"],
        request=OrderIngestIn,
        responses={201: OrderOut, **error_responses(400, 401, 403, 409)},
        summary="Push an order from the marketplace (staff or marketplace token)",
        description="Creates buyer and seller accounts by email when new. Amounts are strings "
        "in the currency's minor unit; instants need a time zone offset. Same number again: 409.",
    )
    def post(self, request: Request) -> Response:
        data = validated(OrderIngestIn, request)
        order = services.order_ingest(
            number=data["number"],
            buyer_email=data["buyer"]["email"],
            buyer_name=data["buyer"]["name"],
            seller_email=data["seller"]["email"],
            seller_name=data["seller"]["name"],
            currency=data["currency"],
            total=data["total"],
            payment_method=data["payment_method"],
            payment_reference=data["payment_reference"],
            card_brand=data["card_brand"],
            card_last4=data["card_last4"],
            placed_at=data["placed_at"],
            deliver_by=data["deliver_by"],
            items=[services.ItemIn(**item) for item in data["items"]],
            actor=viewer(request),
        )
        location = reverse("api:order-detail", kwargs={"number": order.number})
        return Response(
            _order_out(request, order.number),
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class OrderDetailApi(APIView):
    @extend_schema(
        operation_id="orders_retrieve",
        tags=["orders"],
        responses={200: OrderOut, **error_responses(401, 404)},
    )
    def get(self, request: Request, number: str) -> Response:
        return Response(_order_out(request, number))


class OrderShipApi(APIView):
    parser_classes = [ExactJSONParser]
    permission_classes = [IsAuthenticated, IsStaffOrMarketplace]

    @extend_schema(
        operation_id="orders_ship",
        tags=["orders"],
        request=OrderShipIn,
        responses={200: OrderOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        data = validated(OrderShipIn, request)
        services.order_ship(order=order, actor=viewer(request), **data)
        return Response(_order_out(request, number))


class OrderDeliverApi(APIView):
    parser_classes = [ExactJSONParser]
    permission_classes = [IsAuthenticated, IsStaffOrMarketplace]

    @extend_schema(
        operation_id="orders_deliver",
        tags=["orders"],
        request=OrderDeliverIn,
        responses={200: OrderOut, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        data = validated(OrderDeliverIn, request)
        services.order_deliver(order=order, actor=viewer(request), **data)
        return Response(_order_out(request, number))


class OrderMessagesApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    queryset = Message.objects.none()  # the thread is read per order in get()
    throttle_scope = "messages"

    throttle_classes = [PostRateThrottle]

    @extend_schema(
        operation_id="orders_messages_list",
        tags=["orders"],
        responses={200: OrderMessageOut(many=True), **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        user = viewer(request)
        if user.pk not in (order.buyer_id, order.shop.owner_id) and not user.is_staff:
            raise NotAllowed("Only the buyer, the seller and staff read this thread.")
        messages = Message.objects.filter(order=order).select_related("author")
        page = self.paginate_queryset(messages)
        data = OrderMessageOut(page, many=True, context={"order": order}).data
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="orders_messages_create",
        tags=["orders"],
        request=OrderMessageIn,
        responses={201: OrderMessageOut, **error_responses(400, 401, 403, 404, 429)},
        summary="Contact the other party before a refund case exists",
    )
    def post(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        data = validated(OrderMessageIn, request)
        message = services.message_post_on_order(
            order=order, author=viewer(request), body=data["body"]
        )
        return Response(
            OrderMessageOut(message, context={"order": order}).data, status=status.HTTP_201_CREATED
        )


urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<str:number>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:number>/ship/", OrderShipApi.as_view(), name="order-ship"),
    path("orders/<str:number>/deliver/", OrderDeliverApi.as_view(), name="order-deliver"),
    path("orders/<str:number>/messages/", OrderMessagesApi.as_view(), name="order-messages"),
]
