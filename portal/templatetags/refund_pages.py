"""`{% order_badge order %}`, `{% case_badge case %}`, `{% next_steps steps %}`: the pieces of
`portal/badges.py`, for the order and case pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from orders.models import Order
from portal import badges
from refunds.models import RefundCase

register = template.Library()


@register.simple_tag
def order_badge(order: Order) -> SafeString:
    return badges.order_badge_html(order)


@register.simple_tag
def case_badge(case: RefundCase) -> SafeString:
    return badges.case_badge_html(case)


@register.simple_tag
def next_steps(steps: list[Any]) -> SafeString:
    return badges.steps_html(steps)
