"""Disputes JSON API (docs/api.md, Disputes): input serializer → service → output serializer,
nothing more.

Disputes are fetched through `disputes.selectors` with the viewer, so one the viewer may not see
is a 404; whether an action is the viewer's is decided before the body is read (403), and the
service decides the rest under its row locks. Errors leave through the one envelope handler.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.filters import filter_value_refusal
from api.throttling import PostRateThrottle
from api.toolkit import (
    AmountInField,
    ExactJSONParser,
    MultiLineCharField,
    StrictSerializer,
    UTCDateTimeField,
    error_responses,
    serializer_context,
    validated,
    viewer,
)
from kernel.errors import ValidationFailed
from kernel.money import format_optional_amount
from orders.models import ApiScope, Message
from refunds.evidence import EVIDENCE_KINDS
from refunds.models import Evidence
from refunds.selectors import refund_case_read

from . import services
from .models import Dispute, DisputeMessage, DisputeState, Party
from .rules import dispute_actions, dispute_author_role, dispute_role
from .selectors import (
    dispute_evidence,
    dispute_get_for_user,
    dispute_list_for_user,
    dispute_messages,
    dispute_transcript,
    evidence_url,
)

ROLE_CHOICES = ["buyer", "seller", "staff"]


# --- input serializers --------------------------------------------------------------------------


class DisputeOpenIn(StrictSerializer):
    refund = serializers.CharField(help_text="The refund case's id.")
    statement = MultiLineCharField(max_length=5000)
    contact_name = serializers.CharField(max_length=150)
    contact_email = serializers.EmailField(max_length=254)
    contact_phone = serializers.CharField(
        max_length=32, required=False, allow_blank=True, default=""
    )
    desired_amount = AmountInField(help_text="Full or partial, at most the order's refundable.")


class DisputeBodyIn(StrictSerializer):
    body = MultiLineCharField(max_length=5000)


class DisputeRequestInfoIn(StrictSerializer):
    party = serializers.ChoiceField(choices=Party.choices)
    question = MultiLineCharField(max_length=2000)


class DisputeDecideIn(StrictSerializer):
    outcome = serializers.ChoiceField(choices=Party.choices)
    amount = AmountInField(
        required=False,
        allow_null=True,
        default=None,
        help_text="For the buyer only; default: the amount the buyer asked "
        "for. At most the order's refundable.",
    )
    rationale = MultiLineCharField(max_length=5000)


class DisputeEvidenceIn(serializers.Serializer):
    file = serializers.FileField(help_text="JPEG, PNG, WebP or PDF, at most 10 MB.")
    kind = serializers.ChoiceField(choices=list(EVIDENCE_KINDS), required=False, default="other")


# --- output serializers -------------------------------------------------------------------------


class DisputeAuthorOut(serializers.Serializer):
    name = serializers.CharField()


class DisputeMessageOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    author = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    body = serializers.CharField()
    created_at = UTCDateTimeField()

    @extend_schema_field(DisputeAuthorOut)
    def get_author(self, message: DisputeMessage | Message) -> dict[str, str]:
        # Staff speak for the marketplace, not as a named person.
        if dispute_author_role(message.author_id, self.context["dispute"]) == "staff":
            return {"name": "Marketplace staff"}
        return {"name": message.author.display_name}

    @extend_schema_field(serializers.ChoiceField(choices=ROLE_CHOICES))
    def get_role(self, message: DisputeMessage | Message) -> str:
        return dispute_author_role(message.author_id, self.context["dispute"])


class DisputeEvidenceOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField()
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    uploaded_by = serializers.SerializerMethodField()
    created_at = UTCDateTimeField()
    url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=ROLE_CHOICES))
    def get_uploaded_by(self, evidence: Evidence) -> str:
        return dispute_author_role(evidence.uploaded_by_id, self.context["dispute"])

    @extend_schema_field(serializers.URLField(help_text="Permission-checked download."))
    def get_url(self, evidence: Evidence) -> str:
        # Absolute, as the schema's `uri` says and as the case's evidence is (docs/api.md,
        # Disputes): a client may hand it on without knowing where the API lives.
        return self.context["request"].build_absolute_uri(evidence_url(evidence))


class DisputeOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    refund = serializers.UUIDField(source="case.public_id")
    order = serializers.CharField(source="case.order.number")
    state = serializers.ChoiceField(choices=DisputeState.choices)
    role = serializers.SerializerMethodField()
    currency = serializers.CharField()
    desired_amount = serializers.SerializerMethodField()
    statement_by = UTCDateTimeField()
    decision_target = UTCDateTimeField()
    decision_due = UTCDateTimeField()
    overdue = serializers.SerializerMethodField()
    seller_statement_at = UTCDateTimeField(allow_null=True)
    info_party = serializers.SerializerMethodField()
    info_question = serializers.SerializerMethodField()
    outcome = serializers.SerializerMethodField()
    amount = serializers.SerializerMethodField()
    rationale = serializers.SerializerMethodField()
    decided_at = UTCDateTimeField(allow_null=True)
    created_at = UTCDateTimeField()
    actions = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=ROLE_CHOICES))
    def get_role(self, dispute: Dispute) -> str:
        return dispute_role(dispute=dispute, user=self.context["user"])

    @extend_schema_field({"type": "string", "format": "decimal", "example": "59.90"})
    def get_desired_amount(self, dispute: Dispute) -> str | None:
        return format_optional_amount(dispute.desired_amount, dispute.currency)

    @extend_schema_field(serializers.BooleanField())
    def get_overdue(self, dispute: Dispute) -> bool:
        return dispute.is_due_passed(self.context["now"])

    @extend_schema_field(serializers.ChoiceField(choices=Party.choices, allow_null=True))
    def get_info_party(self, dispute: Dispute) -> str | None:
        return dispute.info_party or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_info_question(self, dispute: Dispute) -> str | None:
        return dispute.info_question or None

    @extend_schema_field(serializers.ChoiceField(choices=Party.choices, allow_null=True))
    def get_outcome(self, dispute: Dispute) -> str | None:
        return dispute.outcome or None

    @extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
    def get_amount(self, dispute: Dispute) -> str | None:
        return format_optional_amount(dispute.amount, dispute.currency)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_rationale(self, dispute: Dispute) -> str | None:
        return dispute.rationale or None

    @extend_schema_field(
        serializers.ListField(
            child=serializers.ChoiceField(
                choices=[
                    "statement",
                    "message",
                    "evidence",
                    "withdraw",
                    "assign",
                    "start_review",
                    "request_info",
                    "decide",
                ]
            )
        )
    )
    def get_actions(self, dispute: Dispute) -> list[str]:
        return dispute_actions(dispute=dispute, user=self.context["user"], now=self.context["now"])


class DisputeContactOut(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.EmailField()
    phone = serializers.CharField()


class DisputeDetailOut(DisputeOut):
    statement = serializers.CharField()
    contact = serializers.SerializerMethodField()
    seller_statement = serializers.SerializerMethodField()
    messages = serializers.SerializerMethodField()
    transcript = serializers.SerializerMethodField()
    evidence = serializers.SerializerMethodField()

    @extend_schema_field(DisputeContactOut(allow_null=True))
    def get_contact(self, dispute: Dispute) -> dict[str, str] | None:
        # The buyer's contact details are for the buyer and staff, not the seller.
        if dispute_role(dispute=dispute, user=self.context["user"]) == "seller":
            return None
        return {
            "name": dispute.contact_name,
            "email": dispute.contact_email,
            "phone": dispute.contact_phone,
        }

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_seller_statement(self, dispute: Dispute) -> str | None:
        return dispute.seller_statement or None

    def _nested(self, dispute: Dispute) -> dict[str, Any]:
        return {**self.context, "dispute": dispute}

    @extend_schema_field(DisputeMessageOut(many=True))
    def get_messages(self, dispute: Dispute) -> Any:
        return DisputeMessageOut(
            dispute_messages(dispute=dispute), many=True, context=self._nested(dispute)
        ).data

    @extend_schema_field(DisputeMessageOut(many=True))
    def get_transcript(self, dispute: Dispute) -> Any:
        """The buyer-seller thread of the order, attached automatically (docs/rules.md,
        Disputes)."""
        return DisputeMessageOut(
            dispute_transcript(dispute=dispute), many=True, context=self._nested(dispute)
        ).data

    @extend_schema_field(DisputeEvidenceOut(many=True))
    def get_evidence(self, dispute: Dispute) -> Any:
        return DisputeEvidenceOut(
            dispute_evidence(dispute=dispute), many=True, context=self._nested(dispute)
        ).data


# --- views --------------------------------------------------------------------------------------


def _dispute(request: Request, dispute_id: str) -> Dispute:
    return dispute_get_for_user(user=viewer(request), public_id=dispute_id)


def _detail(request: Request, dispute_id: str) -> dict[str, Any]:
    """The dispute as the viewer sees it now, read again after a service changed it."""
    return DisputeDetailOut(_dispute(request, dispute_id), context=serializer_context(request)).data


class DisputeListCreateApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    queryset = Dispute.objects.none()  # read per viewer in get()
    throttle_scope = "dispute_filing"

    throttle_classes = [PostRateThrottle]

    def get_queryset(self) -> QuerySet[Dispute]:
        if getattr(self, "swagger_fake_view", False):
            return Dispute.objects.none()
        # Empty or repeated, `state` is refused as the list filters of orders and cases are.
        if refusal := filter_value_refusal(self.request.query_params, "state"):
            raise ValidationFailed(refusal, fields={"state": [refusal]})
        state = self.request.query_params.get("state")
        if state is not None and state not in DisputeState.values:
            raise ValidationFailed(
                f"Unknown state {state!r}.",
                fields={"state": [f"One of: {', '.join(DisputeState.values)}."]},
            )
        return dispute_list_for_user(user=viewer(self.request), state=state)

    @extend_schema(
        operation_id="disputes_list",
        tags=["disputes"],
        parameters=[OpenApiParameter("state", str, enum=DisputeState.values)],
        responses={200: DisputeOut(many=True), **error_responses(400, 401)},
        summary="Disputes the viewer is a party to (staff: all), newest first",
    )
    def get(self, request: Request) -> Response:
        # One query for the count and one for the page, however many disputes it has.
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            DisputeOut(page, many=True, context=serializer_context(request)).data
        )

    @extend_schema(
        operation_id="disputes_open",
        tags=["disputes"],
        request=DisputeOpenIn,
        responses={201: DisputeDetailOut, **error_responses(400, 401, 403, 404, 409, 429)},
        summary="The buyer disputes a closed refund case (within 48 h of its closing)",
        description="Only on a case closed as rejected, withdrawn, expired or with a declined "
        "offer, until its `dispute_by` (else 400 `window_closed`); one dispute per case (409 "
        "`duplicate`). The case's message thread is attached as the transcript.",
    )
    def post(self, request: Request) -> Response:
        data = validated(DisputeOpenIn, request)
        case = refund_case_read(
            user=viewer(request), public_id=data["refund"], related=("dispute",)
        )
        dispute = services.dispute_open(
            case=case,
            buyer=viewer(request),
            statement=data["statement"],
            contact_name=data["contact_name"],
            contact_email=data["contact_email"],
            contact_phone=data["contact_phone"],
            desired_amount=data["desired_amount"],
        )
        dispute_id = str(dispute.public_id)
        location = reverse("api:dispute-detail", kwargs={"dispute_id": dispute_id})
        return Response(
            _detail(request, dispute_id),
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )


class DisputeDetailApi(APIView):
    @extend_schema(
        operation_id="disputes_retrieve",
        tags=["disputes"],
        responses={200: DisputeDetailOut, **error_responses(401, 404)},
    )
    def get(self, request: Request, dispute_id: str) -> Response:
        return Response(_detail(request, dispute_id))


class DisputeStatementApi(APIView):
    parser_classes = [ExactJSONParser]

    @extend_schema(
        operation_id="disputes_statement",
        tags=["disputes"],
        request=DisputeBodyIn,
        responses={200: DisputeDetailOut, **error_responses(400, 401, 403, 404, 409)},
        summary="The seller's statement (once; until the decision)",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_require(dispute=dispute, user=viewer(request), action="statement")
        data = validated(DisputeBodyIn, request)
        services.dispute_add_statement(dispute=dispute, seller=viewer(request), body=data["body"])
        return Response(_detail(request, dispute_id))


class DisputeMessagesApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    queryset = DisputeMessage.objects.none()  # read per dispute in get()
    throttle_scope = "messages"

    throttle_classes = [PostRateThrottle]

    @extend_schema(
        operation_id="disputes_messages_list",
        tags=["disputes"],
        responses={200: DisputeMessageOut(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        page = self.paginate_queryset(dispute_messages(dispute=dispute))
        return self.get_paginated_response(
            DisputeMessageOut(page, many=True, context={"dispute": dispute}).data
        )

    @extend_schema(
        operation_id="disputes_messages_create",
        tags=["disputes"],
        request=DisputeBodyIn,
        responses={201: DisputeMessageOut, **error_responses(400, 401, 403, 404, 409, 429)},
        summary="Write on the dispute (parties and staff)",
        description="A message from the party staff asked (`info_party`) answers the question "
        "and moves the dispute from `info_requested` back to `under_review`.",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_require(dispute=dispute, user=viewer(request), action="message")
        data = validated(DisputeBodyIn, request)
        message = services.dispute_post_message(
            dispute=dispute, author=viewer(request), body=data["body"]
        )
        return Response(
            DisputeMessageOut(message, context={"dispute": dispute}).data,
            status=status.HTTP_201_CREATED,
        )


class DisputeEvidenceApi(GenericAPIView):
    parser_classes = [MultiPartParser, FormParser]
    queryset = Evidence.objects.none()  # read per dispute in get()
    throttle_scope = "uploads"

    throttle_classes = [PostRateThrottle]

    @extend_schema(
        operation_id="disputes_evidence_list",
        tags=["disputes"],
        responses={200: DisputeEvidenceOut(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        page = self.paginate_queryset(dispute_evidence(dispute=dispute))
        return self.get_paginated_response(
            DisputeEvidenceOut(
                page, many=True, context={"request": request, "dispute": dispute}
            ).data
        )

    @extend_schema(
        operation_id="disputes_evidence_create",
        tags=["disputes"],
        request=DisputeEvidenceIn,
        responses={201: DisputeEvidenceOut, **error_responses(400, 401, 403, 404, 409, 429)},
        summary="Attach a file to the dispute (10 per dispute; JPEG, PNG, WebP, PDF ≤ 10 MB)",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_require(dispute=dispute, user=viewer(request), action="evidence")
        data = validated(DisputeEvidenceIn, request)
        evidence = services.dispute_add_evidence(
            dispute=dispute, actor=viewer(request), upload=data["file"], kind=data["kind"]
        )
        return Response(
            DisputeEvidenceOut(evidence, context={"request": request, "dispute": dispute}).data,
            status=status.HTTP_201_CREATED,
        )


class DisputeRequestInfoApi(APIView):
    parser_classes = [ExactJSONParser]
    token_scope = ApiScope.DECIDE

    @extend_schema(
        operation_id="disputes_request_info",
        tags=["disputes"],
        request=DisputeRequestInfoIn,
        responses={200: DisputeDetailOut, **error_responses(400, 401, 403, 404, 409)},
        summary="Staff ask the buyer or the seller for more information",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_require(dispute=dispute, user=viewer(request), action="request_info")
        data = validated(DisputeRequestInfoIn, request)
        services.dispute_request_info(
            dispute=dispute, staff=viewer(request), party=data["party"], question=data["question"]
        )
        return Response(_detail(request, dispute_id))


class DisputeWithdrawApi(APIView):
    @extend_schema(
        operation_id="disputes_withdraw",
        tags=["disputes"],
        request=None,
        responses={200: DisputeDetailOut, **error_responses(401, 403, 404, 409)},
        summary="The buyer withdraws the dispute (the case closes for good)",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_withdraw(dispute=dispute, buyer=viewer(request))
        return Response(_detail(request, dispute_id))


class DisputeDecideApi(APIView):
    parser_classes = [ExactJSONParser]
    token_scope = ApiScope.DECIDE

    @extend_schema(
        operation_id="disputes_decide",
        tags=["disputes"],
        request=DisputeDecideIn,
        responses={200: DisputeDetailOut, **error_responses(400, 401, 403, 404, 409)},
        summary="Staff decide the dispute with a written rationale",
        description="From any undecided state, once the seller made a statement or its 48 h "
        "passed (else 409 `invalid_transition`). For the buyer: `amount` (default the amount "
        "asked for, at most the order's refundable) is paid to the original payment method.",
    )
    def post(self, request: Request, dispute_id: str) -> Response:
        dispute = _dispute(request, dispute_id)
        services.dispute_require(dispute=dispute, user=viewer(request), action="decide")
        data = validated(DisputeDecideIn, request)
        services.dispute_decide(
            dispute=dispute,
            staff=viewer(request),
            outcome=data["outcome"],
            amount=data["amount"],
            rationale=data["rationale"],
        )
        return Response(_detail(request, dispute_id))


urlpatterns = [
    path("disputes/", DisputeListCreateApi.as_view(), name="dispute-list"),
    path("disputes/<str:dispute_id>/", DisputeDetailApi.as_view(), name="dispute-detail"),
    path(
        "disputes/<str:dispute_id>/statement/",
        DisputeStatementApi.as_view(),
        name="dispute-statement",
    ),
    path(
        "disputes/<str:dispute_id>/messages/", DisputeMessagesApi.as_view(), name="dispute-messages"
    ),
    path(
        "disputes/<str:dispute_id>/evidence/", DisputeEvidenceApi.as_view(), name="dispute-evidence"
    ),
    path(
        "disputes/<str:dispute_id>/request-info/",
        DisputeRequestInfoApi.as_view(),
        name="dispute-request-info",
    ),
    path(
        "disputes/<str:dispute_id>/withdraw/", DisputeWithdrawApi.as_view(), name="dispute-withdraw"
    ),
    path("disputes/<str:dispute_id>/decide/", DisputeDecideApi.as_view(), name="dispute-decide"),
]
