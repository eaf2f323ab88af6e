"""The small pieces of HTML an order or a case shows wherever it appears: its status badge
and its next steps. Written once, here, for the order list (which builds its cards in Python)
and for the templates (through `{% load refund_pages %}`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from orders.models import Order, OrderStatus
from portal.templatetags.portal import deadline_html
from refunds.models import RefundCase, State

_ORDER_BADGES = {
    OrderStatus.CANCELLED: '<span class="badge badge--bad">Cancelled</span>',
    OrderStatus.DELIVERED: '<span class="badge badge--ok">Delivered</span>',
    OrderStatus.SHIPPED: '<span class="badge badge--info">Shipped</span>',
}


def order_badge_html(order: Order) -> SafeString:
    return mark_safe(  # noqa: S308 - fixed markup
        _ORDER_BADGES.get(order.status, '<span class="badge">Paid · not shipped</span>')
    )


def case_badge_html(case: RefundCase) -> SafeString:
    state = case.state
    if state == State.REFUNDED:
        return mark_safe('<span class="badge badge--ok">Refunded</span>')
    if state == State.REFUND_PENDING:
        return mark_safe('<span class="badge badge--ok">Refund approved</span>')
    if state == State.CLOSED:
        why = f": {str(case.get_closed_reason_display()).lower()}" if case.closed_reason else ""
        return format_html('<span class="badge badge--bad">Closed{}</span>', why)
    if state == State.ESCALATED:
        return mark_safe('<span class="badge badge--warn">In dispute</span>')
    return format_html('<span class="badge badge--warn">{}</span>', case.get_state_display())


def steps_html(
    steps: list[Any], *, viewer_zone: str | None = None, now: datetime | None = None
) -> SafeString:
    """Each step (`portal.views.refunds.NextStep`): what can be done, until when, and its button."""
    out = []
    for step in steps:
        until = (
            f'<span class="small">'
            f"{deadline_html(step.until, 'Until', viewer_zone=viewer_zone, now=now)}</span>"
            if step.until
            else ""
        )
        button = ""
        if step.url:
            secondary = "" if step.tone in ("warn", "bad") else " button--secondary"
            button = (
                f'<a class="button button--small{secondary}" href="{escape(step.url)}">'
                f"{escape(step.button)}</a>"
            )
        out.append(
            f'\n<div class="next-step next-step--{escape(step.tone)}">\n'
            f'  <div class="next-step__body">\n'
            f'    <span class="next-step__what">{escape(step.text)}</span>\n'
            f"    {until}\n"
            f"  </div>\n"
            f"  {button}\n"
            f"</div>\n"
        )
    return mark_safe("".join(out))  # noqa: S308 - every value above is escaped
