"""`/api/v1/tokens/`: the caller's own API keys (docs/api.md, Authentication).

A key is shown once, in the answer that creates it (create and rotate); afterwards only its
prefix. What a request may grant is narrowed by the services (a key grants only scopes it has
itself), so these views declare no write scope of their own (`token_scope = None`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import path, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.toolkit import (
    ExactJSONParser,
    StrictSerializer,
    UTCDateTimeField,
    error_responses,
    validated,
    viewer,
)

from . import rules, services
from .models import ApiScope, ApiToken
from .selectors import api_token_get_for_user, api_token_list_for_user


def _request_token(request: Request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class ApiTokenIn(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiScope.choices),
        required=False,
        allow_empty=False,
        max_length=len(ApiScope.values),
        help_text="Default: every scope the request itself has.",
    )
    days = serializers.IntegerField(
        min_value=1,
        max_value=36500,
        required=False,
        help_text="Lifetime in days (default 90; at most API_TOKEN_MAX_DAYS, 365 by default).",
    )


class ApiTokenRotateIn(StrictSerializer):
    days = serializers.IntegerField(min_value=1, max_value=36500, required=False)


class ApiTokenOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to recognise it by.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiScope.choices))
    created_at = UTCDateTimeField()
    expires_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(allow_null=True, help_text="Updated at most once a minute.")
    revoked_at = UTCDateTimeField(allow_null=True)


class ApiTokenIssuedOut(ApiTokenOut):
    key = serializers.CharField(help_text="The key itself: shown this once, never again.")


def _issued(issued: services.IssuedToken) -> Response:
    data = {**ApiTokenOut(issued.token).data, "key": issued.key}
    location = reverse("api:token-detail", kwargs={"public_id": issued.token.public_id})
    return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})


class ApiTokenListCreateApi(GenericAPIView):
    parser_classes = [ExactJSONParser]
    token_scope = None

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return api_token_list_for_user(user=viewer(self.request))

    @extend_schema(
        operation_id="tokens_list",
        tags=["tokens"],
        responses={200: ApiTokenOut(many=True), **error_responses(401, 403)},
        summary="The caller's API keys, newest first (revoked and expired ones too)",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiTokenOut(page, many=True).data)

    @extend_schema(
        operation_id="tokens_create",
        tags=["tokens"],
        request=ApiTokenIn,
        responses={201: ApiTokenIssuedOut, **error_responses(400, 401, 403)},
        summary="Issue a key for the caller; the key is in this answer only",
    )
    def post(self, request: Request) -> Response:
        data = validated(ApiTokenIn, request)
        user = viewer(request)
        token = _request_token(request)
        scopes: Any = data.get("scopes")
        if scopes is None:
            scopes = rules.api_scopes(user=user, token=token)
        issued = services.api_token_issue(
            user=user,
            scopes=scopes,
            name=data["name"],
            days=data.get("days"),
            via_token=token,
            actor=user,
            how="api",
            request=request,
        )
        return _issued(issued)


class ApiTokenDetailApi(APIView):
    token_scope = None

    @extend_schema(
        operation_id="tokens_retrieve",
        tags=["tokens"],
        responses={200: ApiTokenOut, **error_responses(401, 404)},
    )
    def get(self, request: Request, public_id: str) -> Response:
        token = api_token_get_for_user(user=viewer(request), public_id=public_id)
        return Response(ApiTokenOut(token).data)

    @extend_schema(
        operation_id="tokens_revoke",
        tags=["tokens"],
        request=None,
        responses={204: None, **error_responses(401, 403, 404)},
        summary="Revoke a key at once (again: no change)",
    )
    def delete(self, request: Request, public_id: str) -> Response:
        token = api_token_get_for_user(user=viewer(request), public_id=public_id)
        services.api_token_revoke(
            token=token,
            actor=viewer(request),
            via_token=_request_token(request),
            how="api",
            request=request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenRotateApi(APIView):
    parser_classes = [ExactJSONParser]
    token_scope = None

    @extend_schema(
        operation_id="tokens_rotate",
        tags=["tokens"],
        request=ApiTokenRotateIn,
        responses={201: ApiTokenIssuedOut, **error_responses(400, 401, 403, 404, 409)},
        summary="A new key with the same name and scopes; the old key stops working at once",
    )
    def post(self, request: Request, public_id: str) -> Response:
        token = api_token_get_for_user(user=viewer(request), public_id=public_id)
        data = validated(ApiTokenRotateIn, request)
        issued = services.api_token_rotate(
            token=token,
            actor=viewer(request),
            via_token=_request_token(request),
            days=data.get("days"),
            request=request,
        )
        return _issued(issued)


urlpatterns = [
    path("tokens/", ApiTokenListCreateApi.as_view(), name="token-list"),
    path("tokens/<str:public_id>/", ApiTokenDetailApi.as_view(), name="token-detail"),
    path("tokens/<str:public_id>/rotate/", ApiTokenRotateApi.as_view(), name="token-rotate"),
]
