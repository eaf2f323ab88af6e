"""Orders JSON API (docs/api.md, Orders): input serializer → service → output serializer, nothing
more.

Every order is fetched through `orders.selectors` with the viewer, so an order the viewer may not
see is a 404; whether an action is the viewer's is decided by the service (403). Errors leave
through `api.errors.api_exception_handler` in the one envelope of docs/api.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import classproperty
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import envelope
from api.filters import StrictFilterForm
from api.permissions import IsStaffOrMarketplace, TokenScope
from api.throttling import PostRateThrottle
from api.toolkit import (
    AmountInField,
    AwareDateTimeField,
    ExactJSONParser,
    MoneyOutField,
    MultiLineCharField,
    StrictSerializer,
    UTCDateTimeField,
    error_responses,
    iso_utc,
    serializer_context,
    validated,
    validated_data,
    viewer,
)
from kernel import windows
from kernel.errors import DomainError, NotAllowed, ValidationFailed
from kernel.money import MoneyError, format_amount, is_currency, parse_amount

from . import rules, services
from .models import ApiScope, Message, Order, OrderStatus, PaymentMethod, User
from .selectors import order_get_for_user, order_list_for_user

# A marketplace clock a few minutes ahead is not an error; an order from the future is.
CLOCK_SKEW = timedelta(minutes=5)


# --- parsing ------------------------------------------------------------------------------------


# --- fields -------------------------------------------------------------------------------------


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
        problem = rules.payment_reference_problem(
            payment_method=attrs["payment_method"], payment_reference=attrs["payment_reference"]
        )
        if problem is not None:
            errors["payment_reference"] = [problem]
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
    body = MultiLineCharField(max_length=5000)


BATCH_MAX = services.ORDERS_INGEST_MAX


class OrderBatchIn(StrictSerializer):
    """The body of a batch; each item is judged on its own (`_batch_items`), so one bad item
    is that item's error, not the batch's."""

    orders = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False, max_length=BATCH_MAX
    )


class OrderFeedEventIn(StrictSerializer):
    """One shipping or delivery event of a batch: `shipped` takes what `…/ship/` takes,
    `delivered` what `…/deliver/` takes, with `at` for their instant."""

    number = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=[("shipped", "shipped"), ("delivered", "delivered")])
    carrier = serializers.CharField(max_length=80, required=False)
    tracking_number = serializers.CharField(max_length=80, required=False)
    at = AwareDateTimeField(required=False, allow_null=True, default=None)


class OrderEventBatchIn(StrictSerializer):
    events = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False, max_length=BATCH_MAX
    )


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
    # Present only when the action has a deadline (docs/api.md, Orders: `{}` for `message`,
    # `ship`…). Not read-only, or the schema would list it as always present.
    until = UTCDateTimeField(read_only=False, required=False)


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
        actions["cancel"]["until"] = iso_utc(
            windows.instant_cancel_until(placed_at=order.placed_at)
        )
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


# Inline: a serializer class cannot declare a field named `fields`.
BatchErrorOut = inline_serializer(
    name="BatchErrorOut",
    fields={
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()), required=False
        ),
    },
    required=False,
    help_text="The error envelope's inner object.",
)


class BatchResultOut(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's place in the request, from 0.")
    status = serializers.IntegerField(
        help_text="What the single endpoint would have answered for this item alone."
    )
    number = serializers.CharField(required=False, help_text="The order's number, on success.")
    error = BatchErrorOut


class BatchOut(serializers.Serializer):
    results = BatchResultOut(many=True)


# --- views --------------------------------------------------------------------------------------


# The helpers below are the API toolkit the other apps' api.py modules share.


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
        form = StrictFilterForm

    def filter_role(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        user = self.request.user
        if value == "buyer":
            return queryset.filter(buyer=user)
        return queryset.filter(shop__owner=user)


class OrderListCreateApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    filterset_class = OrderFilter
    token_scope = ApiScope.MARKETPLACE

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [*super().get_permissions(), IsStaffOrMarketplace()]
        return list(super().get_permissions())

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
        (order,) = services.orders_ingest(rows=[_order_row(data)], actor=viewer(request))
        if isinstance(order, DomainError):
            raise order
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
    permission_classes = [IsAuthenticated, TokenScope, IsStaffOrMarketplace]
    token_scope = ApiScope.MARKETPLACE

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
    permission_classes = [IsAuthenticated, TokenScope, IsStaffOrMarketplace]
    token_scope = ApiScope.MARKETPLACE

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


# --- batch ingest (docs/api.md, Batch ingest) ----------------------------------------------------


def _order_row(data: Mapping[str, Any]) -> services.OrderRow:
    return services.OrderRow(
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
    )


def _item_error(index: int, exc: DomainError) -> dict[str, Any]:
    error = envelope(exc.code, exc.message, exc.fields)
    return {"index": index, "status": exc.status_code, **error}


class BatchApi(APIView):
    parser_classes = [ExactJSONParser]
    permission_classes = [IsAuthenticated, TokenScope, IsStaffOrMarketplace]
    token_scope = ApiScope.MARKETPLACE

    # 500 orders are larger than one request's body; read at call time so a test can lower it.
    @classproperty
    def max_body_bytes(cls) -> int:
        return int(settings.API_MAX_BATCH_BODY_BYTES)


class OrderBatchApi(BatchApi):
    @extend_schema(
        operation_id="orders_ingest_batch",
        tags=["orders"],
        request=inline_serializer(
            name="OrderBatchIn",
            fields={
                "orders": OrderIngestIn(many=True, max_length=BATCH_MAX)  # type: ignore[call-arg]
            },
        ),
        responses={200: BatchOut, **error_responses(400, 401, 403, 413)},
        summary=f"Push up to {BATCH_MAX} orders at once (staff or marketplace token)",
        description="Each order as `POST /api/v1/orders/` takes it. The answer is 200 with one "
        "result per order, in order: `status` and `error` are what the single endpoint would have "
        "answered for it alone (201 with `number`, or 400/409 with the error envelope's inner "
        "object). A bad order never blocks the others; the same number twice: the second is 409. "
        f'More than {BATCH_MAX} orders, or a body that is not `{{"orders": [...]}}`: 400.',
    )
    def post(self, request: Request) -> Response:
        items = validated(OrderBatchIn, request)["orders"]
        results: list[dict[str, Any] | None] = [None] * len(items)
        rows: list[services.OrderRow] = []
        places: list[int] = []
        for index, item in enumerate(items):
            try:
                rows.append(_order_row(validated_data(OrderIngestIn, item)))
                places.append(index)
            except DomainError as exc:
                results[index] = _item_error(index, exc)
        outcomes = services.orders_ingest(rows=rows, actor=viewer(request)) if rows else []
        for index, outcome in zip(places, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results[index] = _item_error(index, outcome)
            else:
                results[index] = {"index": index, "status": 201, "number": outcome.number}
        return Response({"results": results})


_FEED_FIELD = {"shipped_at": "at", "delivered_at": "at"}


def _feed_error(index: int, exc: DomainError) -> dict[str, Any]:
    """The single endpoint's error, its field named as the batch item names it (`at`)."""
    if exc.fields:
        exc = type(exc)(
            exc.message,
            fields={_FEED_FIELD.get(name, name): msgs for name, msgs in exc.fields.items()},
            code=exc.code,
        )
    return _item_error(index, exc)


def _feed_one(request: Request, item: Any) -> Order:
    """One event of the batch through the single endpoints' path: the same input serializer,
    selector and service as `…/ship/` or `…/deliver/`."""
    data = validated_data(OrderFeedEventIn, item)
    actor = viewer(request)
    if data["type"] == "shipped":
        shipped = validated_data(
            OrderShipIn,
            {
                **{k: data[k] for k in ("carrier", "tracking_number") if k in data},
                "shipped_at": item.get("at"),
            },
        )
        order = _order_detail(request, data["number"])
        return services.order_ship(order=order, actor=actor, **shipped)
    extra = sorted(k for k in ("carrier", "tracking_number") if k in data)
    if extra:
        raise ValidationFailed(
            f"{extra[0]}: Only a shipped event has it.",
            fields={name: ["Only a shipped event has it."] for name in extra},
        )
    delivered = validated_data(OrderDeliverIn, {"delivered_at": item.get("at")})
    order = _order_detail(request, data["number"])
    return services.order_deliver(order=order, actor=actor, **delivered)


class OrderEventBatchApi(BatchApi):
    @extend_schema(
        operation_id="orders_events_batch",
        tags=["orders"],
        request=inline_serializer(
            name="OrderEventBatchIn",
            fields={
                "events": OrderFeedEventIn(many=True, max_length=BATCH_MAX)  # type: ignore[call-arg]
            },
        ),
        responses={200: BatchOut, **error_responses(400, 401, 403, 413)},
        summary=f"Push up to {BATCH_MAX} shipping and delivery events at once",
        description="`shipped` takes `carrier` and `tracking_number` as `…/ship/` does, "
        "`delivered` neither; `at` is their instant (default now). Applied in order, each as its "
        "single endpoint would (200 with `number`, or its 400/404/409 error); one order may be "
        "shipped and delivered in one batch.",
    )
    def post(self, request: Request) -> Response:
        items = validated(OrderEventBatchIn, request)["events"]
        results: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            # Each event commits on its own, as its single endpoint does: no batch holds the
            # locks of 500 orders (docs/architecture.md, Batch ingest).
            try:
                order = _feed_one(request, item)
            except DomainError as exc:
                results.append(_feed_error(index, exc))
            except Http404:
                results.append(
                    {"index": index, "status": 404, **envelope("not_found", "No such order.")}
                )
            else:
                results.append({"index": index, "status": 200, "number": order.number})
        return Response({"results": results})


urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    # Before orders/<number>/…: "batch" and "events" are not order numbers here.
    path("orders/batch/", OrderBatchApi.as_view(), name="order-batch"),
    path("orders/events/batch/", OrderEventBatchApi.as_view(), name="order-event-batch"),
    path("orders/<str:number>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:number>/ship/", OrderShipApi.as_view(), name="order-ship"),
    path("orders/<str:number>/deliver/", OrderDeliverApi.as_view(), name="order-deliver"),
    path("orders/<str:number>/messages/", OrderMessagesApi.as_view(), name="order-messages"),
]
