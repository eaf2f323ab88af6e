"""The API toolkit every app's `api.py` shares: the exact-decimal JSON parser, the strict
serializer, the money and time fields, one validation entry point, the error envelope's schema,
and the viewer and serializer context of a request (docs/api.md, Conventions)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.metadata import SimpleMetadata
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.settings import api_settings

from kernel.errors import ValidationFailed
from kernel.money import DecimalLiteral, amount_text, format_amount
from kernel.text import text_refusal
from orders.models import User

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# No input of the API nests deeper than a few levels; a body nested thousands deep would exhaust
# the parser's recursion (a RecursionError, a 500) or every walk over it afterwards.
MAX_JSON_DEPTH = 32


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


class ExactJSONParser(JSONParser):
    """JSON whose fractional numbers become `Decimal` exactly as written, never a binary float.

    `"total": 59.90` is read as Decimal("59.90") and `0.30000000000000004` stays that (and is then
    refused as mis-scaled) instead of being rounded by a float on the way in (docs/rules.md, Money).
    Each keeps the text it was written with (`DecimalLiteral`), so an amount written `1e2` is
    judged as written; an exponent too large for a Decimal is a parse error, not a 500.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        too_deep = exceptions.ParseError(
            f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels."
        )
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_float=DecimalLiteral, parse_constant=_reject_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:
            raise too_deep from exc
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise too_deep
        return data


class EndpointMetadata(SimpleMetadata):
    """What `OPTIONS` answers on every endpoint: its name, description, and the media types it
    renders and parses. The input of each method is described by the schema (`/api/schema/`);
    DRF's default would build it from `serializer_class`, which these views do not declare (a
    500 on `OPTIONS`), and would read the object behind the URL to do so."""

    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        return {}


def _flat_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as one level: `buyer.email`, `items[1].unit_price`."""
    out: dict[str, list[str]] = {}

    def add(key: str, messages: list[str]) -> None:
        out.setdefault(key or NON_FIELD, []).extend(messages)

    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == NON_FIELD and prefix:
                name = prefix
            elif isinstance(key, int):  # a list's errors by index
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flat_errors(value, name).items():
                add(k, v)
    elif isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            add(prefix, [str(item) for item in detail])
        else:
            for index, item in enumerate(detail):
                if item:
                    for k, v in _flat_errors(item, f"{prefix}[{index}]").items():
                        add(k, v)
    else:
        add(prefix, [str(detail)])
    return out


def _summary(fields: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {messages[0]}" for name, messages in fields.items())


def validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    return validated_data(serializer_class, request.data)


def validated_data(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """`validated` for one item of a batch body: the same `ValidationFailed`, fields and message
    as the single endpoint's (docs/api.md, Batch ingest)."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        fields = _flat_errors(serializer.errors)
        raise ValidationFailed(_summary(fields) or "Invalid input.", fields=fields)
    return dict(serializer.validated_data)


def iso_utc(instant: datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601 in UTC, "…Z" (what `UTCDateTimeField` gives)."""
    return None if instant is None else _UTC_FIELD.to_representation(instant)


@extend_schema_field({"type": "string", "format": "decimal", "example": "59.90"})
class AmountInField(serializers.Field):
    """A string (or an exact JSON number), handed on as the text it was written with; the amount
    grammar and the currency's scale are judged by `kernel.money.parse_amount` where the currency
    is known (the serializer's `validate`, or the service)."""

    default_error_messages = {
        "invalid": 'Send the amount as a string in the currency\'s minor unit, e.g. "59.90".',
    }

    def to_internal_value(self, data: Any) -> str:
        # A plain Decimal never comes from ExactJSONParser (its numbers are DecimalLiteral).
        if not isinstance(data, str | int | DecimalLiteral) or isinstance(data, bool):
            self.fail("invalid")
        return amount_text(data)

    def to_representation(self, value: Any) -> Any:  # pragma: no cover - input only
        return str(value)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a naive time would be read in a guessed zone, so it is refused."""

    default_error_messages = {
        **serializers.DateTimeField.default_error_messages,
        "invalid": "Use ISO 8601, e.g. 2026-03-01T23:30:00+08:00.",
        "naive": "Include a time zone offset, e.g. 2026-03-01T23:30:00+08:00 or …Z.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if timezone.is_naive(parsed):
            self.fail("naive")
        return parsed.astimezone(UTC)


class UTCDateTimeField(serializers.DateTimeField):
    """Instants leave in UTC ("…Z") whatever zone the viewer's request activated (docs/api.md,
    Conventions)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(default_timezone=UTC, **kwargs)


_UTC_FIELD = UTCDateTimeField()


@extend_schema_field({"type": "string", "format": "decimal", "example": "59.90"})
class MoneyOutField(serializers.Field):
    """An amount as a string with exactly the currency's decimals ("59.90", "1200" for JPY)."""

    def __init__(self, attr: str, **kwargs: Any) -> None:
        self.attr = attr
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj: Any) -> str:
        return format_amount(getattr(obj, self.attr), obj.currency)


class MultiLineCharField(serializers.CharField):
    """Free text of several lines (a message, a statement, a description): CR and LF are kept as
    given. Every other `CharField` of a `StrictSerializer` is single-line (kernel/text.py)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("style", {"base_template": "textarea.html"})
        super().__init__(**kwargs)


class StrictSerializer(serializers.Serializer):
    """Unknown keys are an error: a misspelt `card_last_4` must not be dropped silently.

    Text follows docs/rules.md, Text fields, by default: a `CharField` is single-line (no line
    breaks or control characters), a `MultiLineCharField` keeps line breaks. The raw value is
    judged, before the field strips its ends."""

    def _text_errors(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            value = data.get(name)
            if field.read_only or not isinstance(field, serializers.CharField):
                continue
            if field.style.get("input_type") == "password":  # a secret, never shown as text
                continue
            if not isinstance(value, str):
                continue
            refusal = text_refusal(value, multi_line=isinstance(field, MultiLineCharField))
            if refusal is not None:
                errors[name] = [refusal]
        return errors

    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        errors: dict[str, Any] = {str(name): ["Unknown field."] for name in unknown}
        if isinstance(data, Mapping):
            errors.update(self._text_errors(data))
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not errors:
                raise
            detail = exc.detail if isinstance(exc.detail, Mapping) else {NON_FIELD: exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from exc
        if errors:
            raise serializers.ValidationError(errors)
        return value


# The error envelope of every API answer above 399 (docs/api.md, Errors); `api/schema.py` lists it
# under each status an operation can answer.
ErrorOut = inline_serializer(
    name="ErrorOut",
    fields={
        "error": inline_serializer(
            name="ErrorBodyOut",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
        ),
    },
)


def error_responses(*codes: int) -> dict[int, serializers.Serializer]:
    """The envelope under each of `codes`; the errors every operation shares are added by
    `api.schema.ApiAutoSchema`, so a view names only those of its own domain."""
    return dict.fromkeys(codes, ErrorOut)


def viewer(request: Request) -> User:
    # Every view requires authentication (DEFAULT_PERMISSION_CLASSES), so this is a real user.
    return cast(User, request.user)


def serializer_context(request: Request, **extra: Any) -> dict[str, Any]:
    return {"request": request, "user": viewer(request), "now": timezone.now(), **extra}
