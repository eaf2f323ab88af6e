"""Every route of the URL conf, walked from `django.urls.get_resolver()`.

The security suites iterate these instead of a hand-written list, so a new endpoint or page is
under test (or makes a test fail for want of an expectation) the day it is added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

# Not walked: Django's admin (tested on its own), static files, the schema and its docs page,
# and the API's catch-all 404 (tests/test_errors.py covers it).
SKIPPED_PREFIXES = ("admin/", "static/", "api/schema/", "api/docs/", "^api/")
_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    pattern: str  # e.g. "api/v1/refunds/<str:public_id>/accept/"
    name: str  # "namespace:name", or the pattern when unnamed
    callback: Any
    default_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def view_class(self) -> Any:
        return (
            getattr(self.callback, "view_class", None)
            or getattr(self.callback, "cls", None)
            or self.callback
        )

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/v1/")

    @property
    def params(self) -> list[str]:
        return [m.group("name") for m in _PARAM.finditer(self.pattern)]

    @property
    def key(self) -> str:
        """How the expectation tables name the route: its name plus fixed kwargs (actions)."""
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.default_kwargs.items()))
        return f"{self.name}[{extra}]" if extra else self.name


def _walk(patterns: list[Any], prefix: str, namespace: str | None) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            full_ns = ":".join(p for p in (namespace, ns) if p) or None
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), full_ns)
        elif isinstance(entry, URLPattern):
            pattern = prefix + str(entry.pattern)
            name = (
                f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or pattern)
            )
            yield Route(
                pattern=pattern,
                name=name,
                callback=entry.callback,
                default_kwargs=dict(entry.default_args),
            )


def all_routes() -> list[Route]:
    routes = list(_walk(get_resolver().url_patterns, "", None))
    return [r for r in routes if not r.pattern.startswith(SKIPPED_PREFIXES)]


def api_routes() -> list[Route]:
    return [r for r in all_routes() if r.is_api]


def page_routes() -> list[Route]:
    return [r for r in all_routes() if not r.is_api]


def fill(route: Route, values: Mapping[str, Any]) -> str:
    """The route's URL with each parameter taken from `values` (KeyError names a missing one)."""

    def value(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in values:
            raise KeyError(f"{route.pattern}: no value for <{name}>")
        return str(values[name])

    return "/" + _PARAM.sub(value, route.pattern).lstrip("^").rstrip("$")
