"""Requests no view should see: refused before routing, as a 4xx, with nothing written
(docs/api.md, Errors; docs/architecture.md, Hostile requests).

- A NUL byte in the path is 404 and in the query string 400: no page, API endpoint or admin
  filter can use one, and PostgreSQL refuses NUL in text, so it would otherwise fail as a 500
  deep inside whatever query the value reached.
- An API body larger than the view allows is 413 before it is read. The limit is the view's
  `max_body_bytes` (a batch endpoint may raise it), else `API_MAX_UPLOAD_BODY_BYTES` for a
  multipart upload, else `API_MAX_BODY_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponseBase
from django.views import defaults

from api.errors import body_too_large, envelope_response, is_api_request, page_not_found

NUL = "\x00"


def _has_nul(request: HttpRequest) -> bool:
    return any(NUL in key or any(NUL in v for v in values) for key, values in request.GET.lists())


def body_limit(request: HttpRequest, view_func: Any) -> int:
    """How many bytes of body the API view behind `view_func` accepts."""
    own = getattr(getattr(view_func, "cls", None), "max_body_bytes", None)
    if own is not None:
        return int(own)
    if request.content_type == "multipart/form-data":
        return int(settings.API_MAX_UPLOAD_BODY_BYTES)
    return int(settings.API_MAX_BODY_BYTES)


class HostileRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if NUL in request.path:
            # The URL conf's own 404 handler: the envelope under /api/, the page elsewhere.
            return page_not_found(request, Http404())
        if _has_nul(request):
            message = "Null characters are not allowed in the query string."
            if is_api_request(request):
                return envelope_response("validation_error", message, 400)
            return defaults.bad_request(request, BadRequest(message))
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if not is_api_request(request):
            return None  # pages: Django's DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return envelope_response("validation_error", "Content-Length is not a number.", 400)
        limit = body_limit(request, view_func)
        if length > limit:
            return envelope_response("payload_too_large", body_too_large(limit), 413)
        if length > (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or length) and (
            request.content_type != "multipart/form-data"
        ):
            # The view allows more than Django's own limit, which `request.body` would apply:
            # read the body now, within the view's limit, so `request.body` returns it as is.
            request._body = request.read()  # type: ignore[attr-defined]
        return None
