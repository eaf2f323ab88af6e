"""Refunds JSON API (docs/api.md, Refund cases): input serializer → service → output serializer,
nothing more.

Every case is fetched through `refunds.selectors` with the viewer, so a case the viewer may not
see is a 404. A party calling the other party's action is a 403 before its body is even read;
the service decides the rest (409 `invalid_transition` for a state or a deadline that does not
allow it, with nothing changed). Errors leave through `api.errors.api_exception_handler`.
"""

from __future__ import annotations

from typing import Any, cast

import django_filters
from django.db.models import QuerySet
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.filters import StrictFilterForm
from api.throttling import PostRateThrottle
from api.toolkit import ExactJSONParser, error_responses, serializer_context, validated, viewer
from kernel.errors import ValidationFailed
from orders.api import OrderMessageOut
from orders.models import Message, Order
from orders.selectors import order_get_for_user

from . import services
from .evidence import evidence_add
from .models import Evidence, RefundCase, State
from .rules import ROUTED_CASE_ACTIONS, CaseAction, refund_party_refusal
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
    RefundOut,
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
        form = StrictFilterForm

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

    # The action comes from `refunds.rules.CASE_ACTIONS`, its party is asked before the body
    # is read; the service decides the rest. (The docstring above is the schema's description.)
    parser_classes = [ExactJSONParser]
    case_action: CaseAction

    def post(self, request: Request, public_id: str) -> Response:
        case = _case(request, public_id)
        user = viewer(request)
        refusal = refund_party_refusal(case=case, user=user, party=self.case_action.party)
        if refusal is not None:
            raise refusal
        serializer = self.case_action.input_serializer()
        data = validated(serializer, request) if serializer is not None else {}
        self.case_action.run(case=case, actor=user, **data)
        return Response(_detail(request, public_id))


def _action_api(action: CaseAction) -> type[RefundActionApi]:
    """The action's view: a class of its own, so the schema has one operation per action."""
    words = action.name.split("-")
    name = f"Refund{''.join(w.title() for w in words)}Api"
    view = cast(type[RefundActionApi], type(name, (RefundActionApi,), {"case_action": action}))
    schema = extend_schema(
        operation_id=f"refunds_{'_'.join(words)}",
        tags=TAGS,
        request=action.input_serializer(),
        responses={200: RefundOut, **error_responses(400, 401, 403, 404, 409)},
        summary=action.summary,
    )
    return extend_schema_view(post=schema)(view)


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
    *(
        path(R + f"{action.name}/", _action_api(action).as_view(), name=f"refund-{action.name}")
        for action in ROUTED_CASE_ACTIONS
    ),
    path(R + "messages/", RefundMessagesApi.as_view(), name="refund-messages"),
    path(R + "evidence/", RefundEvidenceApi.as_view(), name="refund-evidence"),
]
