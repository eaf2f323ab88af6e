"""API keys (docs/api.md, Authentication): `Authorization: Token <key>` or `Bearer <key>`.

The key is looked up by its digest (`orders.selectors.api_token_for_key`); a revoked or expired
key, or one of an inactive account, answers 401 in the error envelope. `request.auth` is the
`ApiToken`, whose scopes `api.permissions.TokenScope` then narrows the account's rights with.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from orders.models import ApiToken
from orders.selectors import api_token_for_key
from orders.services import api_token_touch

KEYWORDS = (b"token", b"bearer")


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() not in KEYWORDS:
            return None  # not ours: the session (or nobody) answers
        if len(words) != 2:
            raise AuthenticationFailed("Send the key as 'Authorization: Token <key>'.")
        try:
            key = words[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Invalid token.") from exc
        token = api_token_for_key(key=key)
        now = timezone.now()
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise AuthenticationFailed("This token has been revoked.")
        if token.expires_at <= now:
            raise AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise AuthenticationFailed("This account is disabled.")
        api_token_touch(token=token, now=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The key in the OpenAPI schema, under the name DRF's own token scheme had."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An API key as `Token <key>` (or `Bearer <key>`); docs/api.md, "
            "Authentication.",
        }
