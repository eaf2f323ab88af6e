"""The reads of the case page, the API detail and My orders (refunds/selectors.py): the rows
the viewer may see, in the order the page shows them, with the related rows it reads loaded
(no query per row)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.test import override_settings
from django.utils import timezone

from orders.models import Event, Message, Order
from orders.services import message_post_on_order
from portal.selectors import case_page_read, order_cards
from refunds import services
from refunds.evidence import evidence_add
from refunds.models import ClosedReason, Evidence, RefundCase, State
from refunds.selectors import (
    refund_case_read,
    refund_detail_read,
    refund_evidence,
    refund_filing_open_until,
    refund_filing_options,
    refund_items,
    refund_list_for_user,
    refund_messages,
    refund_timeline,
)
from tests.disputes.factories import open_dispute, rejected_case
from tests.orders.factories import OrderFactory, shipped
from tests.refunds.factories import (
    SECOND,
    RefundCaseFactory,
    cn,
    file_refund,
    minimal_pdf_bytes,
    png_bytes,
    upload,
)

DISPUTE_FIELD = RefundCase._meta.get_field("dispute")
NO_DISPUTE = object()


def cached_dispute(case: RefundCase):
    """The case's cached dispute (None: known to be absent); NO_DISPUTE if not loaded."""
    return DISPUTE_FIELD.get_cached_value(case, default=NO_DISPUTE)


# --- a case with a history --------------------------------------------------------------------


@pytest.fixture
def busy(buyer, seller, other_buyer, other_seller):
    """A case with items, an offer, a thread that began before it, evidence of both parties
    (some for a dispute), a system event, and rows of another order that must stay out."""
    order = OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        items=[
            ("SKU-1", "Travel mug", 2, Decimal("20.00")),
            ("SKU-2", "Tea sampler", 1, Decimal("19.90")),
            ("SKU-3", "Gift box", 3, Decimal("1.00")),
        ],
    )
    mug, _tea, box = order.items.order_by("id")
    message_post_on_order(order=order, author=buyer, body="Before any case: where is it?")
    case = file_refund(
        order,
        amount="20.00",
        items=[
            services.ItemRequest(order_item_id=box.pk, quantity=2),
            services.ItemRequest(order_item_id=mug.pk, quantity=1),
        ],
    )
    services.refund_offer(case=case, actor=seller, amount="10.00")
    for index in range(4):
        author = buyer if index % 2 else seller
        services.refund_message_post(case=case, author=author, body=f"message {index}")
    evidence_add(case=case, actor=buyer, upload=upload("photo.png", png_bytes()), kind="photo")
    evidence_add(case=case, actor=seller, upload=upload("receipt.pdf", minimal_pdf_bytes()))
    evidence_add(case=case, actor=buyer, upload=upload("d1.png", png_bytes()), for_dispute=True)
    evidence_add(
        case=case, actor=seller, upload=upload("d2.pdf", minimal_pdf_bytes()), for_dispute=True
    )
    Event.objects.create(
        order=order,
        case_id=case.public_id,
        actor=None,
        kind="refund.offer_reminder",
        payload={"recipients": ["buyer"], "until": "2026-03-03T10:00:00Z"},
    )

    # rows of another order (another buyer and seller) that no read of `case` may show
    noise_order = OrderFactory(buyer=other_buyer, shop=other_seller.shops.get())
    noise = file_refund(
        noise_order,
        amount="5.00",
        items=[services.ItemRequest(order_item_id=noise_order.items.first().pk, quantity=1)],
    )
    services.refund_message_post(case=noise, author=other_buyer, body="not on the case")
    evidence_add(case=noise, actor=other_buyer, upload=upload("n.png", png_bytes()))
    evidence_add(
        case=noise, actor=other_buyer, upload=upload("nd.png", png_bytes()), for_dispute=True
    )
    case.refresh_from_db()
    return case


def shuffle_times(model, rows, *, base: datetime) -> None:
    """Give `rows` created_at values out of id order, two of them equal, so that only
    `ORDER BY created_at, id` puts them in the ORM's order."""
    ids = sorted(r.pk for r in rows)
    count = len(ids)
    for position, pk in enumerate(ids):
        # the newest row first in time; the two oldest share a moment
        offset = count - position if position > 1 else count
        model.objects.filter(pk=pk).update(created_at=base + timedelta(minutes=offset))


# --- refund_timeline ------------------------------------------------------------------------


def orm_timeline(case: RefundCase) -> list[Event]:
    events = Event.objects.filter(case_id=case.public_id).select_related("actor")
    return list(events.order_by("created_at", "id"))


def test_timeline_is_the_cases_events_by_time_then_id(busy):
    # given events whose times run against their ids, two at the same moment
    shuffle_times(Event, Event.objects.filter(case_id=busy.public_id), base=busy.created_at)
    expected = orm_timeline(busy)

    # when the case's timeline is read
    timeline = refund_timeline(case=busy)

    # then they come by time, then id, and only the case's
    assert [e.pk for e in timeline] == [e.pk for e in expected]
    assert len(timeline) >= 10
    assert [e.pk for e in timeline] != sorted(e.pk for e in timeline)
    assert {e.case_id for e in timeline} == {busy.public_id}


def test_timeline_actors_cost_no_further_query(busy, buyer, seller, django_assert_num_queries):
    # when the timeline is read and each event's actor shown
    with django_assert_num_queries(1):
        timeline = refund_timeline(case=busy)
        shown = [
            (e.kind, e.actor.display_name if e.actor else None, e.actor_label) for e in timeline
        ]

    # then each actor is the event's, and the system event has none
    expected = [
        (e.kind, e.actor.display_name if e.actor else None, e.actor_label)
        for e in orm_timeline(busy)
    ]
    assert shown == expected
    assert ("refund.offer_reminder", None, "system") in shown
    assert {name for _, name, _ in shown} == {"Bea Buyer", "Sam Seller", None}
    system = next(e for e in timeline if e.kind == "refund.offer_reminder")
    assert system.actor is None
    assert system.actor_id is None
    assert system.payload == {"recipients": ["buyer"], "until": "2026-03-03T10:00:00Z"}


def test_a_case_without_events_has_an_empty_timeline(order, django_assert_num_queries):
    case = RefundCaseFactory(order=order)

    with django_assert_num_queries(1):
        assert refund_timeline(case=case) == []


# --- refund_messages --------------------------------------------------------------------------


def test_thread_is_the_orders_messages_by_time_then_id(busy):
    shuffle_times(Message, Message.objects.filter(order_id=busy.order_id), base=busy.created_at)
    expected = Message.objects.filter(order_id=busy.order_id).order_by("created_at", "id")

    thread = list(refund_messages(case=busy))

    assert [m.pk for m in thread] == [m.pk for m in expected]
    assert len(thread) == 5
    assert [m.pk for m in thread] != sorted(m.pk for m in thread)
    # the message from before the case is on the thread too
    assert "Before any case: where is it?" in [m.body for m in thread]
    assert "not on the case" not in [m.body for m in thread]


def test_thread_authors_cost_no_further_query(busy, django_assert_num_queries):
    with django_assert_num_queries(1):
        shown = [(m.body, m.author.display_name, m.author.pk) for m in refund_messages(case=busy)]

    assert len(shown) == 5
    assert shown[0] == ("Before any case: where is it?", "Bea Buyer", busy.order.buyer_id)


# --- refund_evidence -------------------------------------------------------------------


@pytest.mark.parametrize("for_dispute", [False, True])
def test_evidence_is_the_cases_own_files_of_the_kind_asked(busy, for_dispute):
    listed = list(refund_evidence(case=busy, for_dispute=for_dispute))

    assert len(listed) == 2
    assert {v.for_dispute for v in listed} == {for_dispute}
    assert {v.case_id for v in listed} == {busy.pk}


def test_evidence_list_orders_by_time_then_id(busy):
    # given the case's two files at the same moment, the second one earlier than both
    first, second = Evidence.objects.filter(case=busy, for_dispute=False).order_by("id")
    moment = busy.created_at + timedelta(hours=1)
    Evidence.objects.filter(pk=first.pk).update(created_at=moment)
    Evidence.objects.filter(pk=second.pk).update(created_at=moment - SECOND)

    assert [v.pk for v in refund_evidence(case=busy, for_dispute=False)] == [
        second.pk,
        first.pk,
    ]
    Evidence.objects.filter(pk=second.pk).update(created_at=moment)
    assert [v.pk for v in refund_evidence(case=busy, for_dispute=False)] == [
        first.pk,
        second.pk,
    ]


def test_evidence_uploaders_cost_no_further_query(busy, django_assert_num_queries):
    with django_assert_num_queries(1):
        shown = [
            (v.original_name, v.uploaded_by.display_name)
            for v in refund_evidence(case=busy, for_dispute=False)
        ]

    assert sorted(shown) == [("photo.png", "Bea Buyer"), ("receipt.pdf", "Sam Seller")]


# --- refund_items ----------------------------------------------------------------------


def test_items_are_the_cases_items_in_id_order_with_their_lines(busy, django_assert_num_queries):
    with django_assert_num_queries(1):
        items = refund_items(case=busy)
        lines = [(i.quantity, i.order_item.title, i.order_item.sku, i.case) for i in items]

    # the box was asked for first, though it is the order's last line
    assert [(q, t) for q, t, _, _ in lines] == [(2, "Gift box"), (1, "Travel mug")]
    assert all(case is busy for _, _, _, case in lines)
    assert [(i.order_item.sku, i.order_item.unit_price) for i in items] == [
        ("SKU-3", Decimal("1.00")),
        ("SKU-1", Decimal("20.00")),
    ]


def test_a_case_without_items_has_none(order):
    assert refund_items(case=file_refund(order, amount="5.00")) == []


# --- order_cards (portal) ----------------------------------------------------------------


@pytest.fixture
def cases_by_order(buyer, seller):
    """Three orders: two closed cases and a disputed one; one case; none."""
    shop = seller.shops.get()
    now = timezone.now()
    busy_order = OrderFactory(buyer=buyer, shop=shop, placed_at=now - timedelta(days=2))
    older = RefundCaseFactory(
        order=busy_order,
        state=State.CLOSED,
        closed_reason=ClosedReason.WITHDRAWN,
        created_at=now - timedelta(days=1, hours=6),
    )
    same_moment = RefundCaseFactory(
        order=busy_order,
        state=State.CLOSED,
        closed_reason=ClosedReason.WITHDRAWN,
        created_at=now - timedelta(days=1, hours=6),
    )
    disputed = rejected_case(buyer=buyer, seller=seller, order=busy_order, amount="20.00")
    dispute = open_dispute(case=disputed, desired_amount="20.00")
    single_order = OrderFactory(buyer=buyer, shop=shop)
    single = file_refund(single_order, amount="5.00")
    bare_order = OrderFactory(buyer=buyer, shop=shop)
    return {
        "busy_order": busy_order,
        "cases": [disputed, same_moment, older],
        "dispute": dispute,
        "single_order": single_order,
        "single": single,
        "bare_order": bare_order,
    }


def cards_by_order(user, role: str = "buyer") -> dict[int, Order]:
    return {o.pk: o for o in order_cards(user=user, role=role)}


def test_cards_carry_each_orders_cases_newest_first(cases_by_order, buyer):
    busy_order = cases_by_order["busy_order"]
    single_order = cases_by_order["single_order"]
    bare_order = cases_by_order["bare_order"]

    cards = cards_by_order(buyer)

    assert [c.pk for c in cards[busy_order.pk].cases] == [c.pk for c in cases_by_order["cases"]]
    assert [c.pk for c in cards[single_order.pk].cases] == [cases_by_order["single"].pk]
    assert cards[bare_order.pk].cases == []


def test_cards_cost_three_queries_and_nothing_per_row(
    cases_by_order, buyer, django_assert_num_queries
):
    busy_order = cases_by_order["busy_order"]
    dispute = cases_by_order["dispute"]

    # the orders with shop and buyer, their item lines, their cases with disputes
    with django_assert_num_queries(3):
        cards = cards_by_order(buyer)

    disputed, same_moment, older = cards[busy_order.pk].cases
    with django_assert_num_queries(0):
        for order in cards.values():
            shown = (order.shop.name, order.buyer.display_name, order.refundable)
            assert shown[0] and [(i.quantity, i.title) for i in order.items.all()]
            for case in order.cases:
                case.deadline(), case.get_state_display(), case.get_closed_reason_display()
                assert case.public_id
        # the disputed case's dispute, with its public id; the others known to have none
        assert disputed.dispute.public_id == dispute.public_id
        assert [getattr(c, "dispute", None) for c in (same_moment, older)] == [None, None]
    assert [c.state for c in cards[busy_order.pk].cases] == [
        State.ESCALATED,
        State.CLOSED,
        State.CLOSED,
    ]


def test_cards_are_the_users_own_orders_by_role(cases_by_order, buyer, seller, other_buyer):
    mine = set(Order.objects.filter(buyer=buyer).values_list("pk", flat=True))
    assert set(cards_by_order(buyer)) == mine
    assert set(cards_by_order(seller, "seller")) == mine
    assert cards_by_order(seller) == {}
    assert cards_by_order(other_buyer) == {}
    with pytest.raises(ValueError, match="role"):
        order_cards(user=buyer, role="staff")


# --- refund_case_read -------------------------------------------------------------------


@pytest.fixture
def disputed_case(buyer, seller):
    case = rejected_case(buyer=buyer, seller=seller)
    open_dispute(case=case)
    return RefundCase.objects.get(pk=case.pk)


@pytest.fixture(params=["plain", "disputed"])
def page_case(request, order):
    if request.param == "disputed":
        return request.getfixturevalue("disputed_case")
    return file_refund(order, amount="20.00", description="Cracked handle.")


def test_case_page_read_loads_what_the_page_shows_in_one_query(
    buyer, disputed_case, django_assert_num_queries
):
    with django_assert_num_queries(1):
        case = case_page_read(user=buyer, public_id=str(disputed_case.public_id))
        shown = (
            case.order.number,
            case.order.shop.name,
            case.order.shop.slug,
            case.order.buyer.display_name,
            case.order.refundable,
            case.order.payment_method_label,
            case.dispute.public_id,
            case.state,
            case.currency,
        )

    dispute = disputed_case.dispute
    assert shown == (
        disputed_case.order.number,
        "Sam's Shop",
        "sams-shop",
        "Bea Buyer",
        disputed_case.order.refundable,
        "Visa ••4242",
        dispute.public_id,
        State.ESCALATED,
        "USD",
    )
    assert case.get_deferred_fields() == set()
    assert case.order.get_deferred_fields() == set()


def test_case_page_read_knows_there_is_no_dispute(buyer, order, django_assert_num_queries):
    filed = file_refund(order, amount="20.00")

    with django_assert_num_queries(1):
        case = case_page_read(user=buyer, public_id=filed.public_id)
        assert getattr(case, "dispute", None) is None
    assert cached_dispute(case) is None


@pytest.mark.parametrize("who", ["other_buyer", "other_seller"])
def test_another_buyer_or_seller_gets_404(request, page_case, who):
    user = request.getfixturevalue(who)

    with pytest.raises(Http404):
        refund_case_read(user=user, public_id=page_case.public_id)
    assert not refund_list_for_user(user=user).filter(public_id=page_case.public_id).exists()


def test_staff_see_any_case(staff, other_buyer, other_seller, page_case):
    elsewhere = file_refund(OrderFactory(buyer=other_buyer, shop=other_seller.shops.get()))

    for case in (page_case, elsewhere):
        assert refund_case_read(user=staff, public_id=case.public_id).pk == case.pk


def test_a_seller_sees_cases_only_on_their_own_shops(buyer, seller, other_seller):
    at_sara = file_refund(OrderFactory(buyer=buyer, shop=other_seller.shops.get()))

    assert refund_case_read(user=buyer, public_id=at_sara.public_id).pk == at_sara.pk
    assert refund_case_read(user=other_seller, public_id=at_sara.public_id).pk == at_sara.pk
    with pytest.raises(Http404):
        refund_case_read(user=seller, public_id=at_sara.public_id)


@pytest.mark.parametrize(
    "public_id",
    ["nonsense", "", None, 42, "12345678-1234-5678-1234-56781234567", "'; DROP TABLE x; --"],
)
def test_a_malformed_id_is_404(buyer, staff, order, public_id, django_assert_num_queries):
    file_refund(order)

    for user in (buyer, staff):
        with django_assert_num_queries(0), pytest.raises(Http404):
            refund_case_read(user=user, public_id=public_id)


def test_an_unknown_id_and_an_anonymous_viewer_are_404(staff, order):
    case = file_refund(order)

    with pytest.raises(Http404):
        refund_case_read(user=staff, public_id="12345678-1234-5678-1234-567812345678")
    with pytest.raises(Http404):
        refund_case_read(user=AnonymousUser(), public_id=case.public_id)


# --- refund_filing_open_until ---------------------------------------------------------------


def latest_open(order: Order, now: datetime) -> datetime | None:
    options = refund_filing_options(order=order, user=order.buyer, now=now)
    return max((o["closes_at"] for o in options if o["state"] == "open"), default=None)


def end_of(year: int, month: int, day: int) -> datetime:
    return cn(year, month, day, 23, 59, 59, 999999)


def placed_order(buyer, seller, **fields) -> Order:
    return OrderFactory(
        buyer=buyer, shop=seller.shops.get(), placed_at=cn(2026, 11, 1, 20), **fields
    )


def shipped_and_delivered(order: Order, *, shipped_at, delivered_at) -> Order:
    from orders.services import order_deliver

    shipped(order, at=shipped_at)
    return order_deliver(
        order=order,
        delivered_at=delivered_at,
        actor=None,
        now=max(timezone.now(), delivered_at),
    )


FILING_CASES = [
    # an order not yet delivered (shipped 2 Nov): only change of mind, then not received
    ("undelivered", cn(2026, 11, 1, 20), end_of(2026, 11, 8)),
    ("undelivered", cn(2026, 11, 2, 12), end_of(2026, 11, 8)),
    ("undelivered", end_of(2026, 11, 8), end_of(2026, 11, 8)),
    ("undelivered", end_of(2026, 11, 8) + timedelta(microseconds=1), None),
    ("undelivered", cn(2026, 12, 2, 9), None),
    ("undelivered", cn(2026, 12, 2, 10), end_of(2026, 12, 16)),
    ("undelivered", cn(2026, 12, 20), None),
    # delivered 3 Nov 10:00 with a 15-day policy: change of mind outlasts the problem window
    ("delivered_15d", cn(2026, 11, 2, 12), cn(2026, 11, 18, 10)),
    ("delivered_15d", cn(2026, 11, 5, 12), cn(2026, 11, 18, 10)),
    ("delivered_15d", cn(2026, 11, 18, 10), cn(2026, 11, 18, 10)),
    ("delivered_15d", cn(2026, 11, 18, 10) + timedelta(microseconds=1), None),
    ("delivered_15d", cn(2027, 1, 1), None),
    # delivered 3 Nov 10:00 with a 1-day policy: the problem window outlasts change of mind
    ("delivered_1d", cn(2026, 11, 5, 12), end_of(2026, 11, 17)),
    ("delivered_1d", cn(2026, 11, 10), end_of(2026, 11, 17)),
    ("delivered_1d", cn(2026, 11, 18), None),
    # promised by 6 Nov 12:00, shipped, not delivered: not received opens then
    ("late", cn(2026, 11, 5), end_of(2026, 11, 8)),
    ("late", cn(2026, 11, 7), end_of(2026, 11, 20)),
    ("late", cn(2026, 11, 12), end_of(2026, 11, 20)),
    ("late", cn(2026, 11, 21), None),
]


@override_settings(MARKETPLACE_TIME_ZONE="Asia/Shanghai", REFUND_WINDOWS={})
@pytest.mark.parametrize(("kind", "now", "expected"), FILING_CASES)
def test_filing_open_until_is_the_latest_open_windows_close(buyer, seller, kind, now, expected):
    # given an order placed 1 Nov 20:00 China time
    if kind == "undelivered":
        order = placed_order(buyer, seller)
        shipped(order, at=cn(2026, 11, 2, 10))
    elif kind == "late":
        order = placed_order(buyer, seller, deliver_by=cn(2026, 11, 6, 12))
        shipped(order, at=cn(2026, 11, 2, 10))
    else:
        policy = timedelta(days=15) if kind == "delivered_15d" else timedelta(days=1)
        order = placed_order(buyer, seller, return_policy=policy)
        order = shipped_and_delivered(
            order, shipped_at=cn(2026, 11, 2, 10), delivered_at=cn(2026, 11, 3, 10)
        )
    order = Order.objects.get(pk=order.pk)

    # when the order list asks until when a refund can be requested
    until = refund_filing_open_until(order=order, now=now)

    # then it is the latest close of the windows step 2 shows as open
    assert until == latest_open(order, now)
    assert until == expected


@override_settings(MARKETPLACE_TIME_ZONE="Asia/Shanghai", REFUND_WINDOWS={})
def test_filing_open_until_every_hour_matches_the_filing_options(buyer, seller):
    # given a delivered order with a 10-day policy, looked at every 6 hours for five weeks
    order = placed_order(buyer, seller, return_policy=timedelta(days=10))
    order = shipped_and_delivered(
        order, shipped_at=cn(2026, 11, 2, 10), delivered_at=cn(2026, 11, 4, 15)
    )
    order = Order.objects.get(pk=order.pk)
    moments = [cn(2026, 10, 31) + timedelta(hours=6 * i) for i in range(4 * 35)]

    seen = {refund_filing_open_until(order=order, now=m) for m in moments}

    for moment in moments:
        assert refund_filing_open_until(order=order, now=moment) == latest_open(order, moment)
    # before placing, while open (two different closes), after all closed
    assert seen == {None, cn(2026, 11, 14, 15), end_of(2026, 11, 18)}


def test_the_api_detail_counts_the_orders_thread(busy, buyer, django_assert_num_queries):
    # given the busy case's thread (messages from before and during the case)
    # when the API detail reads the case: the case with its count, then its items
    with django_assert_num_queries(2):
        case = refund_detail_read(user=buyer, public_id=busy.public_id)
        items = list(case.items.all())

    # then the count is the thread's size, as the list's is
    assert case.message_count == Message.objects.filter(order_id=busy.order_id).count() > 0
    assert case.message_count == refund_list_for_user(user=buyer).get(pk=busy.pk).message_count
    assert len(items) == 2
