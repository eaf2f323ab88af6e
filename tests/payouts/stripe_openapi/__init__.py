"""Stripe's own schemas for what the local Stripe server receives and answers
(docs/architecture.md, Tests), so the fake cannot just agree with our own assumptions.

`spec.json` beside this file is a subset of Stripe's published OpenAPI description (README.md
here says which commit and API version, and how to refresh it). Stripe's description is
OpenAPI 3.0; it is turned into JSON Schema (2020-12) for `jsonschema` by a small conversion:
- `nullable: true` allows `null` (added to `type` or `enum`, or as an `anyOf` alternative);
- `x-…` extensions are dropped (documentation for Stripe's own tools);
- `#/components/schemas/<name>` refers to `#/$defs/<name>`.

Requests are decoded the way Stripe decodes them: the form body (and the query string)
`metadata[payout]=…` is `{"metadata": {"payout": …}}`, `expand[]=a` or `expand[0]=a` a list,
and since a form carries only strings, a value is converted to the integer, number or boolean
its schema asks for when it spells one (so `amount=12.5` stays a string and is refused). A GET's
query parameters are checked like a body: Stripe refuses parameters it does not know.

Each `validate_*` function returns the violations as readable lines (an empty list when all is
well); `validate_event` and `validate_dispute` raise `SchemaViolation` instead, for builders.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jsonschema import Draft202012Validator

SPEC_FILE = Path(__file__).resolve().parent / "spec.json"
REF = "#/components/schemas/"


class SchemaViolation(AssertionError):
    """What was sent or built is not what Stripe's schema says Stripe sends or accepts."""


@functools.cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text())


def to_json_schema(node: Any) -> Any:
    """One OpenAPI 3.0 schema object as JSON Schema 2020-12 (see the module's docstring)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-") and key != "nullable"
    }
    if isinstance(out.get("$ref"), str):
        out["$ref"] = "#/$defs/" + out["$ref"].removeprefix(REF)
    if node.get("nullable") is True:
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _defs() -> dict[str, Any]:
    return {name: to_json_schema(s) for name, s in spec()["components"]["schemas"].items()}


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**to_json_schema(schema), "$defs": _defs()})


def _errors(schema: dict[str, Any], instance: Any, where: str) -> list[str]:
    found = sorted(_validator(schema).iter_errors(instance), key=lambda e: list(e.path))
    lines = []
    for error in found:
        at = "/".join(str(part) for part in error.absolute_path) or "(the whole)"
        lines.append(f"{where}: at {at}: {error.message}")
    return lines


# --- the operations -------------------------------------------------------------------------


def operation(method: str, path: str) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The kept operation for a request's method and path (no query), with its path values."""
    for template, methods in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        match = re.match(pattern, path)
        if match and method.lower() in methods:
            return methods[method.lower()], match.groupdict()
    return None


def form_decode(raw: str) -> dict[str, Any]:
    """A form body or query string as Stripe reads it: brackets nest (`metadata[payout]=…`),
    `expand[]=…` and `expand[0]=…` make a list; every value stays a string."""
    decoded: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])] if match else [key]
        node: Any = decoded
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            nxt = None if last else parts[index + 1]
            child: Any = value if last else ([] if nxt == "" or str(nxt).isdigit() else {})
            if isinstance(node, list):
                if part.isdigit():
                    node.extend([None] * (int(part) + 1 - len(node)))
                    if last or not isinstance(node[int(part)], list | dict):
                        node[int(part)] = child
                    node = node[int(part)]
                else:
                    node.append(child)
                    node = node[-1]
            elif last or not isinstance(node.get(part), list | dict):
                node[part] = child
                node = child
            else:
                node = node[part]
    return decoded


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema.get("$ref"), str):
        schema = spec()["components"]["schemas"][schema["$ref"].removeprefix(REF)]
    return schema


def coerce(value: Any, schema: dict[str, Any]) -> Any:
    """A decoded form value converted to what its schema asks for, when it spells that type."""
    schema = _resolve(schema)
    for alternative in schema.get("anyOf", []):
        converted = coerce(value, alternative)
        if not _validator(alternative).is_valid(converted):
            continue
        return converted
    kind = schema.get("type")
    if isinstance(value, str):
        if kind == "integer" and re.fullmatch(r"-?\d+", value):
            return int(value)
        if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return float(value) if "." in value else int(value)
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
        }
    if kind == "array" and isinstance(value, list):
        return [coerce(item, schema.get("items", {})) for item in value]
    return value


def _query_schema(op: dict[str, Any]) -> dict[str, Any]:
    params = [p for p in op.get("parameters", []) if p["in"] == "query"]
    return {
        "type": "object",
        "properties": {p["name"]: p["schema"] for p in params},
        "required": [p["name"] for p in params if p.get("required")],
        "additionalProperties": False,
    }


def validate_request(method: str, path: str, query: str, body: str, content_type: str) -> list[str]:
    """A request as the local server received it, against the operation's request schemas."""
    where = f"{method} {path}"
    found = operation(method, path)
    if found is None:
        return [f"{where}: no such operation in Stripe's description (kept subset)"]
    op, values = found
    problems = []
    for param in op.get("parameters", []):
        if param["in"] == "path":
            problems += _errors(param["schema"], values[param["name"]], f"{where} path")
    query_schema = _query_schema(op)
    problems += _errors(
        query_schema, coerce(form_decode(query), query_schema), f"{where} query string"
    )
    if body or method.upper() == "POST":
        media = op.get("requestBody", {}).get("content", {})
        form = media.get("application/x-www-form-urlencoded")
        if form is None or not content_type.startswith("application/x-www-form-urlencoded"):
            return [*problems, f"{where}: body of type {content_type!r} is not accepted"]
        body_schema = form["schema"]
        problems += _errors(body_schema, coerce(form_decode(body), body_schema), f"{where} body")
    return problems


def validate_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """An answer of the local server, against the operation's schema for that status."""
    where = f"{method} {path} answered {status}"
    found = operation(method, path.split("?", 1)[0])
    if found is None:
        return [f"{where}: no such operation in Stripe's description (kept subset)"]
    responses = found[0]["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        return [f"{where}: Stripe's description has no answer with that status"]
    return _errors(response["content"]["application/json"]["schema"], body, where)


def example(name: str) -> dict[str, Any]:
    """A fresh copy of Stripe's own example object (`refund`, `dispute`, `event`) kept beside
    the schemas: tests build on it, so every field Stripe sends is there."""
    examples = json.loads((SPEC_FILE.parent / "fixtures.json").read_text())
    return examples[name]


# --- objects built by tests --------------------------------------------------------------------


def validate_object(name: str, obj: Any) -> list[str]:
    """`obj` against the kept component schema `name` (refund, dispute, event, error …)."""
    return _errors({"$ref": REF + name}, obj, name)


def _raise(problems: list[str]) -> None:
    if problems:
        raise SchemaViolation("\n".join(problems))


def validate_dispute(obj: Any) -> None:
    """A Dispute object (dict) as Stripe would send it; raises `SchemaViolation`."""
    _raise(validate_object("dispute", obj))


def validate_event(payload: Any) -> None:
    """A webhook Event (dict) as Stripe would send it, its `data.object` checked against the
    schema its `object` names (a refund for `refund.*` and `charge.refund.updated`, a dispute
    for `charge.dispute.*`); raises `SchemaViolation`."""
    problems = validate_object("event", payload)
    inner = payload.get("data", {}).get("object") if isinstance(payload, dict) else None
    if isinstance(inner, dict):
        kind = inner.get("object")
        if kind in spec()["components"]["schemas"]:
            problems += _errors({"$ref": REF + str(kind)}, inner, f"event data.object ({kind})")
        elif str(payload.get("type", "")).startswith(("refund.", "charge.")):
            # The objects the portal reads must be checked; an event it ignores (a Payout
            # object, say) only needs a valid envelope.
            problems.append(f"event data.object: no kept schema for object {kind!r}")
    _raise(problems)
