"""The one DRF exception handler: every API error, ours or DRF's, in the envelope of docs/api.md,
Errors."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse
from django.views import defaults
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from kernel.errors import DomainError
from kernel.security import security_event


def envelope(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def envelope_response(code: str, message: str, status: int, fields: Any = None) -> JsonResponse:
    """The envelope outside DRF: the URL conf's error handlers and the request middleware."""
    return JsonResponse(envelope(code, message, fields), status=status)


def is_api_request(request: HttpRequest) -> bool:
    """Whether an answer to this request is the API's JSON envelope rather than an HTML page."""
    return request.path.startswith("/api/")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def body_too_large(limit: int) -> str:
    return f"The request body is larger than {limit // (1024 * 1024) or 1} MiB."


_DRF_CODES = {
    exceptions.NotAuthenticated: ("not_authenticated", 401),
    exceptions.AuthenticationFailed: ("not_authenticated", 401),
    exceptions.PermissionDenied: ("permission_denied", 403),
    exceptions.NotFound: ("not_found", 404),
    exceptions.MethodNotAllowed: ("method_not_allowed", 405),
    exceptions.NotAcceptable: ("not_acceptable", 406),
    PayloadTooLarge: ("payload_too_large", 413),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", 415),
    exceptions.Throttled: ("rate_limited", 429),
    exceptions.ParseError: ("validation_error", 400),
}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        flat: list[Any] = []
        for item in detail:
            value = _flatten(item)
            flat.extend(value if isinstance(value, list) else [value])
        return flat
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = _error_response(exc, context)
    if response is not None and response.status_code in (401, 403):
        # Every API 401 and 403 passes here: the one place they are logged as refused access.
        request = context.get("request")
        security_event(
            "access_refused",
            request=request,
            level=logging.WARNING,
            path=getattr(request, "path", None),
            status=response.status_code,
            code=response.data["error"]["code"] if isinstance(response.data, dict) else None,
        )
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(envelope(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, TransitionNotAllowed | ConcurrentTransition):
        return Response(
            envelope("invalid_transition", "That action is not possible in the current state."),
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        return Response(envelope("validation_error", "; ".join(exc.messages), fields), status=400)
    if isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, met while DRF reads a body.
        exc = PayloadTooLarge(body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0))
    elif isinstance(exc, SuspiciousOperation):  # too many fields, a malformed multipart body…
        return Response(envelope("validation_error", "The request is malformed."), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(fields, dict):
            message = "; ".join(
                f"{name}: {msgs[0] if isinstance(msgs, list) and msgs else msgs}"
                for name, msgs in fields.items()
            )
        else:
            message = "; ".join(fields) if isinstance(fields, list) else str(fields)
            fields = None
        response.data = envelope("validation_error", message or "Invalid input.", fields)
        return response
    code, _ = next(
        ((c, s) for cls, (c, s) in _DRF_CODES.items() if isinstance(exc, cls)),
        ("error", response.status_code),
    )
    if code == "not_authenticated" and response.status_code != status.HTTP_401_UNAUTHORIZED:
        # DRF downgrades to 403 when the view's first authenticator (session) has no challenge
        # header; the contract says 401 (docs/api.md, Errors), so challenge with the token scheme.
        response.status_code = status.HTTP_401_UNAUTHORIZED
        response["WWW-Authenticate"] = "Token"
    detail = getattr(exc, "detail", str(exc))
    response.data = envelope(code, str(detail))
    return response


# --- the URL conf's handlers (refundportal/urls.py) --------------------------------------------
# What Django answers itself, outside any DRF view (an unknown path, an exception a view did not
# handle, a body over DATA_UPLOAD_MAX_MEMORY_SIZE met by a middleware): the envelope under
# /api/, Django's own page elsewhere.


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        return envelope_response("payload_too_large", body_too_large(limit), 413)
    return envelope_response("validation_error", "The request is malformed.", 400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if not is_api_request(request):
        return defaults.permission_denied(request, exception)
    return envelope_response("permission_denied", "You may not do that.", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponseBase:
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return envelope_response("not_found", "No such API endpoint or object.", 404)


def server_error(request: HttpRequest) -> HttpResponseBase:
    if not is_api_request(request):
        return defaults.server_error(request)
    # Nothing of the failure is told: it is logged (django.request) for the operators.
    return envelope_response("server_error", "Something went wrong on our side.", 500)
