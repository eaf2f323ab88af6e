"""A seller's public reputation (docs/rules.md, Seller reputation), computed with aggregate queries.

Everything is counted over the shop's orders placed in the last 90 days. It lives in `disputes`,
the lowest app that knows both refund cases and disputes, so no lower app has to name them.

* refund rate — share of those orders on which the buyer filed a refund request;
* dispute rate — share of those orders that went to a dispute;
* disputes lost — disputes staff decided for the buyer (the seller lost them);
* median time to answer — the median of `answered_at - created_at` over requests the seller
  answered (accepted, offered or rejected); requests left to auto-accept are counted apart.

Four queries whatever the shop's size: one aggregate, one count of answered requests, and the
one or two middle rows of the answer times ordered in the database (portable: PostgreSQL and
SQLite alike, no percentile function needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.utils import timezone

from orders.models import Order, Shop

from .models import DisputeState

WINDOW = timedelta(days=90)
# The dispute on a case (one per case; docs/rules.md, Disputes); decided for the buyer, the seller
# lost it.
DISPUTE = "refund_cases__dispute"
DISPUTE_LOST_BY_SELLER = DisputeState.RESOLVED_BUYER


@dataclass(frozen=True)
class Reputation:
    since: datetime
    orders: int
    refund_requests: int
    disputes: int
    disputes_lost: int
    answered: int
    auto_accepted: int
    median_answer: timedelta | None

    @property
    def refund_rate(self) -> Decimal | None:
        return _percent(self.refund_requests, self.orders)

    @property
    def dispute_rate(self) -> Decimal | None:
        return _percent(self.disputes, self.orders)


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def seller_reputation(*, shop: Shop, now: datetime | None = None) -> Reputation:
    now = now or timezone.now()
    since = now - WINDOW
    orders = Order.objects.filter(shop=shop, placed_at__gte=since)
    totals = orders.aggregate(
        orders=Count("id", distinct=True),
        refund_requests=Count("id", filter=Q(refund_cases__isnull=False), distinct=True),
        disputes=Count(DISPUTE, distinct=True),
        disputes_lost=Count(
            DISPUTE, filter=Q(**{f"{DISPUTE}__state": DISPUTE_LOST_BY_SELLER}), distinct=True
        ),
        auto_accepted=Count(
            "refund_cases", filter=Q(refund_cases__auto_accepted=True), distinct=True
        ),
    )
    # One row per answered request (the filter and the annotation share the one join).
    answers = (
        orders.filter(refund_cases__answered_at__isnull=False)
        .annotate(
            answer_time=ExpressionWrapper(
                F("refund_cases__answered_at") - F("refund_cases__created_at"),
                output_field=DurationField(),
            )
        )
        .order_by("answer_time")
        .values_list("answer_time", flat=True)
    )
    answered = answers.count()
    median = None
    if answered:
        middle = list(answers[(answered - 1) // 2 : answered // 2 + 1])
        median = sum(middle, timedelta()) / len(middle)
    return Reputation(
        since=since,
        orders=totals["orders"],
        refund_requests=totals["refund_requests"],
        disputes=totals["disputes"],
        disputes_lost=totals["disputes_lost"],
        answered=answered,
        auto_accepted=totals["auto_accepted"],
        median_answer=median,
    )
