"""Template helpers of the portal pages: money, deadlines in both zones, live countdowns.

Every deadline a page shows reads the same way (docs/rules.md, Marketplace time zone): a countdown
the browser keeps live from its `data-deadline` attribute, and the exact instant in the marketplace
time zone and in the viewer's own (the zone `portal.middleware` activated for this request). None of
these helpers touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.forms import BoundField
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from kernel import windows
from kernel.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """`59.9|money:"USD"` → "59.90 USD" (the currency's own minor unit, never a float)."""
    if amount is None or amount == "":
        return ""
    return format_money(Decimal(amount), currency)


def _viewer_zone() -> str:
    return timezone.get_current_timezone_name()


@register.filter
def both_zones(instant: datetime | None) -> str:
    """The instant in the marketplace time zone and the viewer's own."""
    if instant is None:
        return ""
    return windows.format_both(instant, _viewer_zone())


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "less than a minute"


@register.filter
def countdown_text(instant: datetime | None, now: datetime | None = None) -> str:
    """ "2 d 3 h left" / "ended 5 min ago": the server's first rendering of a countdown."""
    if instant is None:
        return ""
    delta = instant - (now or timezone.now())
    if delta.total_seconds() > 0:
        return f"{_span(delta)} left"
    return f"ended {_span(delta)} ago"


def countdown_html(instant: datetime, now: datetime | None = None) -> SafeString:
    """A `<time>` the browser counts down live (static/js/portal.js); plain text without JS."""
    now = now or timezone.now()
    iso = instant.astimezone(UTC).isoformat()
    return format_html(
        '<time class="countdown{}" datetime="{}" data-deadline="{}">{}</time>',
        " countdown--passed" if instant <= now else "",
        iso,
        iso,
        countdown_text(instant, now),
    )


@register.simple_tag
def countdown(instant: datetime | None) -> str:
    """`{% countdown instant %}`: `countdown_html`, nothing for no instant."""
    if instant is None:
        return ""
    return countdown_html(instant)


@register.simple_tag
def deadline(instant: datetime | None, label: str = "") -> SafeString:
    """`{% deadline instant "Answer by" %}`: label, live countdown and the exact instant in the
    marketplace zone and the viewer's own; nothing for no instant."""
    if not instant:
        return mark_safe("")
    now = timezone.now()
    return format_html(
        '<span class="deadline{}">{}<span class="deadline__exact">{}</span> {}</span>\n',
        " deadline--passed" if instant <= now else "",
        format_html('<span class="deadline__label">{}</span> ', label) if label else "",
        windows.format_both(instant, _viewer_zone()),
        countdown_html(instant, now),
    )


@register.filter
def duration_words(value: timedelta | None) -> str:
    """A return policy or window in words: "15 days", "2 hours 30 minutes"."""
    if value is None:
        return ""
    return windows.duration_words(value)


@register.inclusion_tag("orders/partials/field.html")
def field(bound: BoundField) -> dict[str, Any]:
    """`{% field form.body %}`: one form field as orders/partials/field.html lays it out
    (label, help, the error next to it, the input)."""
    return {"field": bound}


@register.inclusion_tag("orders/partials/form_errors.html")
def form_errors(form: Any) -> dict[str, Any]:
    """`{% form_errors form %}`: the errors that belong to no one field, above the form
    (orders/partials/form_errors.html shows them only when there are some)."""
    return {"form": form}
