"""The order cancellations that pay out at once: `/api/v1/orders/<number>/cancel/` and
`…/cancel-out-of-stock/`. They live here, not in `orders.api`, because each creates a payout."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.toolkit import MoneyOutField, error_responses, serializer_context, viewer
from orders.api import OrderOut, _order_detail

from . import services
from .models import Payout


class OrderPayoutOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    amount = MoneyOutField("amount")
    currency = serializers.CharField()
    status = serializers.CharField()
    payment_method_label = serializers.SerializerMethodField()

    def get_payment_method_label(self, payout: Payout) -> str:
        # Money goes back only to the order's original payment method (docs/rules.md, Payouts).
        return payout.order.payment_method_label


class OrderCancelOut(serializers.Serializer):
    order = OrderOut()
    payout = OrderPayoutOut()


def _cancel_out(request: Request, number: str, payout: Payout) -> dict[str, Any]:
    order = _order_detail(request, number)
    payout = Payout.objects.get(pk=payout.pk)  # the send may already have settled it
    payout.order = order
    return {
        "order": OrderOut(order, context=serializer_context(request)).data,
        "payout": OrderPayoutOut(payout).data,
    }


class OrderCancelApi(APIView):
    @extend_schema(
        operation_id="orders_cancel",
        tags=["orders"],
        request=None,
        responses={200: OrderCancelOut, **error_responses(400, 401, 403, 404, 409)},
        summary="Instant cancellation by the buyer (unshipped, within 24 h): full refund",
    )
    def post(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        payout = services.order_cancel_by_buyer(order=order, actor=viewer(request))
        return Response(_cancel_out(request, number, payout))


class OrderCancelOutOfStockApi(APIView):
    @extend_schema(
        operation_id="orders_cancel_out_of_stock",
        tags=["orders"],
        request=None,
        responses={200: OrderCancelOut, **error_responses(400, 401, 403, 404, 409)},
        summary="The seller cancels an unshipped order as out of stock: full refund",
    )
    def post(self, request: Request, number: str) -> Response:
        order = _order_detail(request, number)
        payout = services.order_cancel_out_of_stock(order=order, actor=viewer(request))
        return Response(_cancel_out(request, number, payout))


urlpatterns = [
    path("orders/<str:number>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path(
        "orders/<str:number>/cancel-out-of-stock/",
        OrderCancelOutOfStockApi.as_view(),
        name="order-cancel-out-of-stock",
    ),
]
