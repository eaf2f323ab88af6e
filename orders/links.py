"""Links for many rows of one page: `reverse()` resolves each URL name once, rows fill in a key.

`reverse()` walks the resolver and checks the pattern on every call (≈ 40 µs); a list of 50
orders links each one three or four times. `RowLinks` reverses a name once per process with a
stand-in key, learns which converter the route's one parameter has, and for each row checks the
key against that converter and splices it into the URL. A key `reverse()` would percent-encode,
a key the converter rejects, or a route it cannot read this way goes through `reverse()`
itself: the result is always what `reverse(name, args=[key])` returns or raises.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.urls import (
    NoReverseMatch,
    Resolver404,
    get_script_prefix,
    get_urlconf,
    resolve,
    reverse,
)
from django.urls.converters import get_converters

# Characters `reverse()` never percent-encodes (RFC 3986 unreserved). A key made only of these
# appears in the URL as it is.
_VERBATIM = re.compile(r"[A-Za-z0-9._~-]+\Z")
# A stand-in that every converter our row links use accepts: str, slug and uuid.
_STAND_IN = "00000000-0000-4000-8000-0000000c0de0"
# A `path()` route's parameter: <converter:name> or <name> (a str).
_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


_Route = tuple[str, str, re.Pattern[str]]
# What `_learn` found, per URL configuration, script prefix and name: URL patterns do not
# change while a process runs (a test that swaps ROOT_URLCONF gets its own entries).
_learned: dict[tuple[str, str, str], _Route | None] = {}


class RowLinks:
    """`links(name, key)` == `reverse(name, args=[key])`, for one request's rows."""

    def __call__(self, name: str, key: object) -> str:
        text = str(key)
        where = (str(get_urlconf() or settings.ROOT_URLCONF), get_script_prefix(), name)
        if where not in _learned:
            _learned[where] = self._learn(name)
        route = _learned[where]
        if route is None or not _VERBATIM.match(text) or not route[2].match(text):
            return reverse(name, args=[key])
        return f"{route[0]}{text}{route[1]}"

    @staticmethod
    def _learn(name: str) -> _Route | None:
        """The URL around the one parameter of `name`'s route, and its converter's pattern."""
        try:
            url = reverse(name, args=[_STAND_IN])
        except NoReverseMatch:
            return None
        if url.count(_STAND_IN) != 1:
            return None
        prefix = get_script_prefix()
        try:
            match = resolve("/" + url.removeprefix(prefix))
        except Resolver404:
            return None
        parameters = _PARAMETER.findall(match.route or "")
        if len(parameters) != 1:
            return None
        converter = get_converters().get(parameters[0][0] or "str")
        if converter is None:
            return None
        head, tail = url.split(_STAND_IN)
        return head, tail, re.compile(f"(?:{converter.regex})\\Z")
