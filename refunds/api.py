"""Refunds JSON API (docs/api.md, Refund cases): input serializer → service → output serializer,
nothing more.

Every case is fetched through `refunds.selectors` with the viewer, so a case the viewer may not
see is a 404. A party calling the other party's action is a 403 before its body is even read;
the service decides the rest (409 `invalid_transition` for a state or a deadline that does not
allow it, with nothing changed). Errors leave through `api.errors.api_exception_handler`.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.throttling import PostRateThrottle
from api.toolkit import ExactJSONParser, error_responses, serializer_context, validated, viewer
from kernel.errors import ValidationFailed
from orders.api import OrderMessageOut
from orders.models import Message, Order
from orders.selectors import order_get_for_user

from . import services
from .evidence import evidence_add
from .models import Evidence, RefundCase, State
from .rules import ACTION_PARTY, refund_party_refusal
from .selectors import (
    refund_case_read,
    refund_detail_read,
    refund_evidence,
    refund_list_for_user,
    refund_messages,
    refund_timeline,
    refund_timelines,
)
from .serializers import (
    RefundEvidenceIn,
    RefundEvidenceOut,
    RefundFileIn,
    RefundMessageIn,
    RefundOfferIn,
    RefundOut,
    RefundRejectIn,
    RefundShipReturnIn,
)

TAGS = ["refunds"]


def _case(request: Request, public_id: Any) -> RefundCase:
    return refund_case_read(user=viewer(request), public_id=public_id)


def _detail(request: Request, public_id: Any) -> dict[str, Any]:
    """The case as the viewer sees it now, read again after a service changed it."""
    case = refund_detail_read(user=viewer(request), public_id=public_id)
    context = serializer_context(request, timelines={case.public_id: refund_timeline(case=case)})
    return RefundOut(case, context=context).data


def _items(order: Order, requested: list[dict[str, Any]]) -> list[services.ItemRequest]:
    """Lines are named by SKU (the API never shows database ids; docs/api.md, Conventions)."""
    by_sku: dict[str, list[int]] = {}
    for line in order.items.all():
        by_sku.setdefault(line.sku, []).append(line.pk)
    items, errors = [], {}
    for index, item in enumerate(requested):
        lines = by_sku.get(item["sku"], [])
        if len(lines) != 1:
            errors[f"items[{index}].sku"] = [
                "No line of this order has this SKU."
                if not lines
                else "Several lines of this order have this SKU."
            ]
            continue
        items.append(services.ItemRequest(order_item_id=lines[0], quantity=item["quantity"]))
    if errors:
        raise ValidationFailed("Choose items of this order.", fields=errors)
    return items


class RefundFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=State.choices)
    role = django_filters.ChoiceFilter(
        choices=[("buyer", "buyer"), ("seller", "seller")],
        method="filter_role",
        help_text="Only the cases the viewer filed (buyer) or must answer (seller).",
    )
    order = django_filters.CharFilter(field_name="order__number", help_text="An order number.")

    class Meta:
        model = RefundCase
        fields = ["state", "role", "order"]

    def filter_role(
        self, queryset: QuerySet[RefundCase], name: str, value: str
    ) -> QuerySet[RefundCase]:
        user = self.request.user
        if value == "buyer":
            return queryset.filter(order__buyer=user)
        return queryset.filter(order__shop__owner=user)


class RefundListCreateApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    filterset_class = RefundFilter
    throttle_scope = "refund_filing"

    throttle_classes = [PostRateThrottle]

    def get_queryset(self) -> QuerySet[RefundCase]:
        if getattr(self, "swagger_fake_view", False):
            return RefundCase.objects.none()
        return refund_list_for_user(user=viewer(self.request))

    @extend_schema(
        operation_id="refunds_list",
        tags=TAGS,
        responses={200: RefundOut(many=True), **error_responses(400, 401)},
        summary="Refund cases the viewer filed or must answer (staff: all)",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        cases = list(page) if page is not None else []
        context = serializer_context(request, timelines=refund_timelines(cases=cases))
        return self.get_paginated_response(RefundOut(cases, many=True, context=context).data)

    @extend_schema(
        operation_id="refunds_create",
        tags=TAGS,
        request=RefundFileIn,
        responses={201: RefundOut, **error_responses(400, 401, 403, 404, 409, 429)},
        summary="File a refund request on one of the buyer's orders",
        description="Reasons have windows (docs/rules.md): outside one, `window_closed` names the "
        "deadline and `window_not_open` names when it opens. `amount_exceeds_refundable` when "
        "more than the order can still refund; `duplicate` (409) while a case is open.",
    )
    def post(self, request: Request) -> Response:
        data = validated(RefundFileIn, request)
        order = order_get_for_user(user=viewer(request), number=data["order"])
        case = services.refund_request(
            order=order,
            buyer=viewer(request),
            reason=data["reason"],
            amount=data["amount"],
            description=data["description"],
            return_item=data["return_item"],
            items=_items(order, data["items"]) if data["items"] else None,
        )
        location = reverse("api:refund-detail", kwargs={"public_id": case.public_id})
        return Response(
            _detail(request, case.public_id),
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class RefundDetailApi(APIView):
    @extend_schema(
        operation_id="refunds_retrieve",
        tags=TAGS,
        responses={200: RefundOut, **error_responses(401, 404)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        return Response(_detail(request, public_id))


# --- actions ----------------------------------------------------------------------------------


class RefundActionApi(APIView):
    """One case action: the viewer must see the case (404) and be its party (403)."""

    parser_classes = [ExactJSONParser]
    action_name = ""

    def _party_case(self, request: Request, public_id: str) -> RefundCase:
        case = _case(request, public_id)
        party = ACTION_PARTY[self.action_name]
        refusal = refund_party_refusal(case=case, user=viewer(request), party=party)
        if refusal is not None:
            raise refusal
        return case


_ACTION_ERRORS = error_responses(400, 401, 403, 404, 409)


class RefundAcceptApi(RefundActionApi):
    action_name = "accept"

    @extend_schema(
        operation_id="refunds_accept",
        tags=TAGS,
        request=None,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Seller accepts the request (a return is asked for when needed)",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        services.refund_accept(case=case, actor=viewer(request))
        return Response(_detail(request, public_id))


class RefundOfferApi(RefundActionApi):
    action_name = "offer"

    @extend_schema(
        operation_id="refunds_offer",
        tags=TAGS,
        request=RefundOfferIn,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Seller offers a partial refund; the buyer has 48 h to answer",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        data = validated(RefundOfferIn, request)
        services.refund_offer(case=case, actor=viewer(request), amount=data["amount"])
        return Response(_detail(request, public_id))


class RefundRejectApi(RefundActionApi):
    action_name = "reject"

    @extend_schema(
        operation_id="refunds_reject",
        tags=TAGS,
        request=RefundRejectIn,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Seller rejects the request (the buyer may then dispute)",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        data = validated(RefundRejectIn, request)
        services.refund_reject(case=case, actor=viewer(request), reason=data["reason"])
        return Response(_detail(request, public_id))


class RefundConfirmReturnApi(RefundActionApi):
    action_name = "confirm-return"

    @extend_schema(
        operation_id="refunds_confirm_return",
        tags=TAGS,
        request=None,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Seller confirms the returned item arrived; the refund is paid",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        services.refund_confirm_return(case=case, actor=viewer(request))
        return Response(_detail(request, public_id))


class RefundAcceptOfferApi(RefundActionApi):
    action_name = "accept-offer"

    @extend_schema(
        operation_id="refunds_accept_offer",
        tags=TAGS,
        request=None,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Buyer takes the seller's partial offer",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        services.refund_accept_offer(case=case, actor=viewer(request))
        return Response(_detail(request, public_id))


class RefundDeclineOfferApi(RefundActionApi):
    action_name = "decline-offer"

    @extend_schema(
        operation_id="refunds_decline_offer",
        tags=TAGS,
        request=None,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Buyer declines the offer (the case closes; it may be disputed)",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        services.refund_decline_offer(case=case, actor=viewer(request))
        return Response(_detail(request, public_id))


class RefundWithdrawApi(RefundActionApi):
    action_name = "withdraw"

    @extend_schema(
        operation_id="refunds_withdraw",
        tags=TAGS,
        request=None,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Buyer withdraws the request",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        services.refund_withdraw(case=case, actor=viewer(request))
        return Response(_detail(request, public_id))


class RefundShipReturnApi(RefundActionApi):
    action_name = "ship-return"

    @extend_schema(
        operation_id="refunds_ship_return",
        tags=TAGS,
        request=RefundShipReturnIn,
        responses={200: RefundOut, **_ACTION_ERRORS},
        summary="Buyer enters the return's carrier and tracking number",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = self._party_case(request, public_id)
        data = validated(RefundShipReturnIn, request)
        services.refund_ship_return(
            case=case,
            actor=viewer(request),
            carrier=data["carrier"],
            tracking_number=data["tracking_number"],
        )
        return Response(_detail(request, public_id))


# --- messages and evidence --------------------------------------------------------------------


class RefundMessagesApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    queryset = Message.objects.none()  # the thread is read per case in get()
    throttle_scope = "messages"

    throttle_classes = [PostRateThrottle]

    @extend_schema(
        operation_id="refunds_messages_list",
        tags=TAGS,
        responses={200: OrderMessageOut(many=True), **error_responses(401, 404)},
        summary="The case's thread (the order's, carried on)",
    )
    def get(self, request: Request, public_id: str) -> Response:
        case = _case(request, public_id)
        page = self.paginate_queryset(refund_messages(case=case))
        data = OrderMessageOut(page, many=True, context={"order": case.order}).data
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="refunds_messages_create",
        tags=TAGS,
        request=RefundMessageIn,
        responses={201: OrderMessageOut, **error_responses(400, 401, 403, 404, 409, 429)},
        summary="Write to the other party (the thread becomes a dispute's transcript)",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = _case(request, public_id)
        data = validated(RefundMessageIn, request)
        message = services.refund_message_post(case=case, author=viewer(request), body=data["body"])
        return Response(
            OrderMessageOut(message, context={"order": case.order}).data,
            status=status.HTTP_201_CREATED,
        )


class RefundEvidenceApi(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    queryset = Evidence.objects.none()  # read per case in get()
    throttle_scope = "uploads"

    throttle_classes = [PostRateThrottle]

    @extend_schema(
        operation_id="refunds_evidence_list",
        tags=TAGS,
        responses={200: RefundEvidenceOut(many=True), **error_responses(401, 404)},
        parameters=[
            OpenApiParameter(
                "for_dispute",
                bool,
                required=False,
                description="Only the dispute's files (true) or the case's (false).",
            )
        ],
        summary="Files attached to the case and its dispute",
    )
    def get(self, request: Request, public_id: str) -> Response:
        case = _case(request, public_id)
        flag = request.query_params.get("for_dispute")
        for_dispute = None if flag in (None, "") else flag.lower() in {"1", "true", "yes"}
        page = self.paginate_queryset(refund_evidence(case=case, for_dispute=for_dispute))
        data = RefundEvidenceOut(
            page, many=True, context=serializer_context(request, case=case)
        ).data
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="refunds_evidence_create",
        tags=TAGS,
        request={"multipart/form-data": RefundEvidenceIn},
        responses={201: RefundEvidenceOut, **error_responses(400, 401, 403, 404, 429)},
        summary="Attach a file: JPEG, PNG, WebP or PDF (by content), ≤ 10 MB, ≤ 10 per case",
    )
    def post(self, request: Request, public_id: str) -> Response:
        case = _case(request, public_id)
        data = validated(RefundEvidenceIn, request)
        evidence = evidence_add(
            case=case, actor=viewer(request), upload=data["file"], kind=data["kind"]
        )
        return Response(
            RefundEvidenceOut(evidence, context=serializer_context(request, case=case)).data,
            status=status.HTTP_201_CREATED,
        )


R = "refunds/<str:public_id>/"

urlpatterns = [
    path("refunds/", RefundListCreateApi.as_view(), name="refund-list"),
    path(R, RefundDetailApi.as_view(), name="refund-detail"),
    path(R + "accept/", RefundAcceptApi.as_view(), name="refund-accept"),
    path(R + "offer/", RefundOfferApi.as_view(), name="refund-offer"),
    path(R + "reject/", RefundRejectApi.as_view(), name="refund-reject"),
    path(R + "confirm-return/", RefundConfirmReturnApi.as_view(), name="refund-confirm-return"),
    path(R + "accept-offer/", RefundAcceptOfferApi.as_view(), name="refund-accept-offer"),
    path(R + "decline-offer/", RefundDeclineOfferApi.as_view(), name="refund-decline-offer"),
    path(R + "withdraw/", RefundWithdrawApi.as_view(), name="refund-withdraw"),
    path(R + "ship-return/", RefundShipReturnApi.as_view(), name="refund-ship-return"),
    path(R + "messages/", RefundMessagesApi.as_view(), name="refund-messages"),
    path(R + "evidence/", RefundEvidenceApi.as_view(), name="refund-evidence"),
]
