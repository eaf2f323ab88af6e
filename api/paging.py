"""The API's one paging: `limit` and `offset`, bounded (docs/api.md, Paging and filters).

DRF's `LimitOffsetPagination` reads a bad `limit` as the default and passes any `offset` on to
the database, where `offset=70418469733033607168` fails as a 500 (bigint out of range) and
`limit=100000` returns every row. Here each is an integer in its range or the request is a 400
`validation_error` naming the parameter.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

from api.filters import filter_value_refusal

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_OFFSET = 2**31
_INTEGER = re.compile(r"[0-9]{1,12}")  # digits only: no sign, spaces, "1e3" or "٣"


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    # Empty or repeated is refused as for every list parameter (api/filters.py).
    if refusal := filter_value_refusal(request.query_params, name):
        raise ValidationError({name: [refusal]})
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if _INTEGER.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ValidationError({name: [f"Send an integer from {low} to {high}."]})
    return value


class ApiPagination(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return _bounded(request, self.limit_query_param, DEFAULT_LIMIT, 1, MAX_LIMIT)

    def get_offset(self, request: Request) -> int:
        return _bounded(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
