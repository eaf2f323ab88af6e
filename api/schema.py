"""The OpenAPI schema documents every error an operation can answer (docs/api.md, Errors).

A view declares its success answer and the errors of its own domain (409 `invalid_transition`,
`duplicate`) with `extend_schema`; the errors every operation shares are added here once, in the
error envelope, so no operation answers a status its schema does not list
(tests/security/test_schema_fuzz.py runs schemathesis' conformance checks over all of them).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from api.toolkit import ErrorOut

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Every operation: a malformed query string (400), no or a bad token (401), a token whose scopes
# do not cover the request or an action that is another party's (403), an object the caller may
# not see (404), an `Accept` the API cannot answer (406).
EVERY_OPERATION = (400, 401, 403, 404, 406)
# Operations that read a body: one too large (413) or of a media type the view does not parse (415).
WITH_BODY = (413, 415)
# Every POST under /api/v1/ takes an Idempotency-Key (docs/api.md, Idempotency): 409 while the
# key's first request runs, 422 when the key came with another request.
WITH_IDEMPOTENCY_KEY = (409, 422)

IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Optional. A retry with the same key and the same request within 24 hours is answered "
        "with the first answer (status, body, `Location`) and has no second effect; it carries "
        "`Idempotent-Replayed: true`. Keys are per account (docs/api.md, Idempotency)."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]+$",
    },
}

URI_TOO_LONG = OpenApiResponse(
    description=(
        "The request line is longer than the HTTP server accepts (gunicorn: 4094 bytes). The "
        "server answers before the API sees the request, so the body is not the error envelope."
    )
)


class ApiAutoSchema(AutoSchema):
    def _error_statuses(self) -> list[int]:
        statuses = list(EVERY_OPERATION)
        if self.method not in SAFE_METHODS:
            statuses.extend(WITH_BODY)
            # `PostRateThrottle` counts writes only (docs/api.md, Throttles).
            if getattr(self.view, "throttle_classes", None):
                statuses.append(429)
        if self.method == "POST":
            statuses.extend(WITH_IDEMPOTENCY_KEY)
        return statuses

    def _get_parameters(self) -> Any:
        parameters = super()._get_parameters()
        if self.method == "POST":
            parameters.append(dict(IDEMPOTENCY_KEY_PARAMETER))
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        # Below `extend_schema`, which overrides `get_response_serializers` with what the view
        # declares: its answers are kept and the shared errors added beside them.
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    ErrorOut, str(status), direction=direction
                )
        if "414" not in responses:
            responses["414"] = self._get_response_for_code(URI_TOO_LONG, "414", direction=direction)
        return dict(sorted(responses.items()))

    def _get_response_headers_for_code(self, status_code: Any, direction: Any = "response") -> Any:
        headers = super()._get_response_headers_for_code(status_code, direction)
        if str(status_code) == "401":
            headers.setdefault(
                "WWW-Authenticate",
                {
                    "schema": {"type": "string", "example": "Token"},
                    "description": "The scheme to authenticate with.",
                    "required": True,
                },
            )
        if str(status_code) in ("200", "201") and self.method == "POST":
            headers.setdefault(
                "Idempotent-Replayed",
                {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "Present on an answer replayed for a repeated Idempotency-Key.",
                    "required": False,
                },
            )
        if str(status_code) == "429":
            headers.setdefault(
                "Retry-After",
                {
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "Seconds until the budget allows another request.",
                    "required": True,
                },
            )
        return headers
