"""The hand-written reads of the order list (orders/sql.py, paging.py, links.py, OrderCards):
each gives what the ORM, `Paginator` or `reverse()` it stands in for gives."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from orders import sql
from orders.links import RowLinks
from orders.models import Event, Order, OrderItem, Shop, User
from orders.selectors import OrderCards, order_item_lines
from orders.sql import Shape, columns, prep, select
from portal.paging import first_page_or_paginate
from tests.orders.factories import OrderFactory, ShopFactory, UserFactory

BERLIN = ZoneInfo("Europe/Berlin")
CHINA = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=CHINA)

ORDER_TABLE = Order._meta.db_table
EVENT_TABLE = Event._meta.db_table
SHOP_TABLE = Shop._meta.db_table
USER_TABLE = User._meta.db_table


def all_fields(model) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields)


def assert_same_fields(loaded, orm, names) -> None:
    """Every named field of `loaded` equals (and has the type of) the ORM's value."""
    for name in names:
        ours, theirs = getattr(loaded, name), getattr(orm, name)
        assert ours == theirs, name
        assert type(ours) is type(theirs), name


@pytest.fixture
def rich_order(buyer, seller):
    """An order with values that need converting: Decimals, an interval, aware instants."""
    return OrderFactory(
        buyer=buyer,
        shop=seller.shops.get(),
        number="ORD-RICH",
        total=Decimal("1234.56"),
        reserved=Decimal("10.05"),
        placed_at=datetime(2026, 3, 1, 23, 30, 15, 123456, tzinfo=CHINA),
        deliver_by=datetime(2026, 3, 9, 12, 0, tzinfo=BERLIN),
        return_policy=timedelta(days=3, hours=4, minutes=15, seconds=7),
        card_brand="Mastercard",
        card_last4="0005",
    )


# --- Shape ----------------------------------------------------------------------------------


def test_shape_sorts_fields_into_model_order_and_drops_repeats():
    # given fields named out of order, one twice
    shape = Shape(Order, "o", ("total", "number", "id", "buyer_id", "total"))

    # then they are kept in the model's field order, the primary key first
    assert shape.fields == ("id", "number", "buyer_id", "total")
    assert len(shape) == 4
    assert shape.columns == 'o."id", o."number", o."buyer_id", o."total"'


def test_columns_joins_each_shapes_columns_in_turn():
    order = Shape(Order, "o", ("number", "id"))
    shop = Shape(Shop, "s", ("name", "id"))

    assert columns(order, shop) == 'o."id", o."number", s."id", s."name"'


def test_shape_rejects_an_unknown_field():
    with pytest.raises(ValueError, match="no_such_column"):
        Shape(Order, "o", ("id", "no_such_column"))
    # a relation's name is not its column (the attname is)
    with pytest.raises(ValueError, match="buyer"):
        Shape(Order, "o", ("id", "buyer"))


def test_shape_rejects_a_shape_without_the_primary_key():
    with pytest.raises(ValueError, match="primary key"):
        Shape(Order, "o", ("number", "total"))


# --- select -----------------------------------------------------------------------------------


def test_select_loads_an_order_as_the_orm_does(rich_order):
    # given every concrete field of an order selected
    shape = Shape(Order, "o", all_fields(Order))

    # when it is read through select
    ((loaded,),) = select(
        f'SELECT {shape.columns} FROM "{ORDER_TABLE}" AS o WHERE o."id" = %s',  # noqa: S608
        [rich_order.pk],
        [shape],
    )

    # then each value is what (and of the type) the ORM loads
    orm = Order.objects.get(pk=rich_order.pk)
    assert isinstance(loaded, Order)
    assert loaded.get_deferred_fields() == set()
    assert_same_fields(loaded, orm, all_fields(Order))
    assert loaded.total == Decimal("1234.56")
    assert loaded.reserved == Decimal("10.05")
    assert loaded.return_policy == timedelta(days=3, hours=4, minutes=15, seconds=7)
    assert loaded.placed_at == datetime(2026, 3, 1, 23, 30, 15, 123456, tzinfo=CHINA)
    assert loaded.placed_at.utcoffset() is not None
    assert loaded.deliver_by == datetime(2026, 3, 9, 12, 0, tzinfo=BERLIN)
    assert loaded.delivered_at is None
    assert loaded._state.adding is False
    assert loaded._state.db == "default"


def test_select_loads_an_event_with_json_payload_and_uuid_as_the_orm_does(order, buyer):
    # given an event with a nested JSON payload and a case id
    case_id, dispute_id = uuid.uuid4(), uuid.uuid4()
    payload = {
        "amount": "59.90",
        "recipients": [buyer.pk, 7],
        "nested": {"flag": True, "nothing": None, "ratio": 0.5},
        "text": "Grüße ✓",
    }
    event = Event.objects.create(
        order=order,
        case_id=case_id,
        dispute_id=dispute_id,
        actor=buyer,
        kind="refund.requested",
        from_state="",
        to_state="requested",
        note="filed",
        payload=payload,
        created_at=datetime(2026, 3, 2, 8, 0, 1, 500, tzinfo=BERLIN),
    )
    shape = Shape(Event, "e", all_fields(Event))

    # when it is read through select
    ((loaded,),) = select(
        f'SELECT {shape.columns} FROM "{EVENT_TABLE}" AS e WHERE e."id" = %s',  # noqa: S608
        [event.pk],
        [shape],
    )

    # then the payload is decoded and the ids are UUIDs, as the ORM loads them
    orm = Event.objects.get(pk=event.pk)
    assert_same_fields(loaded, orm, all_fields(Event))
    assert loaded.payload == payload
    assert loaded.case_id == case_id
    assert isinstance(loaded.case_id, uuid.UUID)
    assert loaded.dispute_id == dispute_id
    assert loaded.created_at == datetime(2026, 3, 2, 8, 0, 1, 500, tzinfo=BERLIN)
    assert loaded.dispatched_at is None


def test_fields_not_selected_are_deferred_and_load_on_read(rich_order, django_assert_num_queries):
    # given an order read with three of its fields
    shape = Shape(Order, "o", ("id", "number", "total"))
    ((loaded,),) = select(
        f'SELECT {shape.columns} FROM "{ORDER_TABLE}" AS o WHERE o."id" = %s',  # noqa: S608
        [rich_order.pk],
        [shape],
    )

    # then the others are deferred
    assert loaded.number == "ORD-RICH"
    assert loaded.total == Decimal("1234.56")
    assert loaded.get_deferred_fields() == set(all_fields(Order)) - {"id", "number", "total"}

    # when one of them is read, it is loaded with one query
    with django_assert_num_queries(1):
        reference = loaded.payment_reference
    assert reference == Order.objects.get(pk=rich_order.pk).payment_reference
    assert "payment_reference" not in loaded.get_deferred_fields()
    with django_assert_num_queries(1):
        assert loaded.return_policy == timedelta(days=3, hours=4, minutes=15, seconds=7)


def test_a_left_join_miss_is_none(order, buyer):
    # given a system event (no actor) and one by the buyer
    system = Event.objects.create(order=order, kind="order.swept", actor=None)
    by_buyer = Event.objects.create(order=order, kind="order.message", actor=buyer)
    event = Shape(Event, "e", ("id", "kind", "actor_id"))
    actor = Shape(User, "u", ("id", "email", "name"))

    # when both are read with their actor
    rows = select(
        f"SELECT {columns(event, actor)} "  # noqa: S608
        f'FROM "{EVENT_TABLE}" AS e LEFT JOIN "{USER_TABLE}" AS u ON u."id" = e."actor_id" '
        'WHERE e."order_id" = %s ORDER BY e."id"',
        [order.pk],
        [event, actor],
    )

    # then the system event's actor is None, the buyer's a loaded user
    assert [(e.pk, e.kind) for e, _ in rows] == [
        (system.pk, "order.swept"),
        (by_buyer.pk, "order.message"),
    ]
    assert rows[0][1] is None
    person = rows[1][1]
    assert isinstance(person, User)
    assert (person.pk, person.email, person.name) == (buyer.pk, buyer.email, buyer.name)
    assert "password" in person.get_deferred_fields()


def test_extra_values_come_after_the_instances(rich_order):
    order = Shape(Order, "o", ("id", "number"))
    shop = Shape(Shop, "s", ("id", "slug"))

    (row,) = select(
        f"SELECT {columns(order, shop)}, o.\"number\" || '-x', 'plain' "  # noqa: S608
        f'FROM "{ORDER_TABLE}" AS o JOIN "{SHOP_TABLE}" AS s ON s."id" = o."shop_id" '
        'WHERE o."id" = %s',
        [rich_order.pk],
        [order, shop],
        extra=2,
    )

    assert len(row) == 4
    assert isinstance(row[0], Order)
    assert row[0].number == "ORD-RICH"
    assert isinstance(row[1], Shop)
    assert row[1].slug == "sams-shop"
    # extra values come as the database returns them (no converters: their type is the SQL's)
    assert row[2:] == ("ORD-RICH-x", "plain")


def test_select_refuses_rows_of_another_width(order):
    shape = Shape(Order, "o", ("id", "number"))

    with pytest.raises(ValueError, match="expected 3 columns, got 2"):
        select(
            f'SELECT {shape.columns} FROM "{ORDER_TABLE}" AS o WHERE o."id" = %s',  # noqa: S608
            [order.pk],
            [shape],
            extra=1,
        )


def test_prep_gives_a_parameter_that_finds_the_row(order):
    # given an event whose case id is given as text
    case_id = uuid.uuid4()
    event = Event.objects.create(order=order, case_id=case_id, kind="refund.requested")

    # when the text is prepared as the ORM would send it
    value = prep(Event, "case_id", str(case_id))

    # then it is the backend's form of the UUID and finds the row
    expected = case_id if connection.features.has_native_uuid_field else case_id.hex
    assert value == expected
    found = select(
        f'SELECT e."id" FROM "{EVENT_TABLE}" AS e WHERE e."case_id" = %s',  # noqa: S608
        [value],
        (),
        extra=1,
    )
    assert found == [(event.pk,)]


# --- first_page_or_paginate ----------------------------------------------------------------


def orders_of(buyer, count: int, start: datetime = T0) -> list[Order]:
    shop = ShopFactory()
    return [
        OrderFactory(buyer=buyer, shop=shop, placed_at=start + timedelta(hours=i), items=[])
        for i in range(count)
    ]


def page_facts(page) -> tuple:
    return (
        [o.number for o in page.object_list],
        page.number,
        page.paginator.num_pages,
        page.paginator.count,
        page.has_other_pages(),
    )


@pytest.mark.parametrize("number", [None, "", "1", 1])
def test_a_list_that_fits_on_page_one_costs_one_query(buyer, number, django_assert_num_queries):
    # given 3 orders and pages of 5
    made = orders_of(buyer, 3)

    # when page one is asked for
    with django_assert_num_queries(1):
        page = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), number, 5)
        facts = page_facts(page)

    # then it is the whole list, newest first, and its count
    assert facts == ([o.number for o in reversed(made)], 1, 1, 3, False)


def test_a_list_of_exactly_one_page_costs_one_query(buyer, django_assert_num_queries):
    made = orders_of(buyer, 5)

    with django_assert_num_queries(1):
        page = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), None, 5)
        facts = page_facts(page)

    assert facts == ([o.number for o in reversed(made)], 1, 1, 5, False)


def test_an_empty_list_is_an_empty_first_page(buyer, django_assert_num_queries):
    with django_assert_num_queries(1):
        page = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), "1", 5)
        facts = page_facts(page)

    expected = Paginator(OrderCards(user=buyer, role="buyer"), 5).get_page("1")
    assert facts == page_facts(expected) == ([], 1, 1, 0, False)


def test_a_longer_list_counts_and_shows_the_first_page(buyer):
    # given 7 orders and pages of 5
    made = orders_of(buyer, 7)
    newest_first = [o.number for o in reversed(made)]

    # when page one is asked for
    page = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), None, 5)

    # then it holds the newest 5 of 7, on two pages
    assert page_facts(page) == (newest_first[:5], 1, 2, 7, True)
    assert page.has_next() is True
    assert page.end_index() == 5
    expected = Paginator(OrderCards(user=buyer, role="buyer"), 5).get_page(None)
    assert page_facts(page) == page_facts(expected)


@pytest.mark.parametrize(
    "number", ["2", 2, "3", "0", "-1", "999", "abc", "2.5", " 1", "1.0", "01", 1.0, [1]]
)
def test_later_and_junk_page_numbers_behave_like_the_paginator(buyer, number):
    # given 12 orders and pages of 5
    made = orders_of(buyer, 12)
    newest_first = [o.number for o in reversed(made)]

    # when a page is asked for by any number
    ours = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), number, 5)
    theirs = Paginator(OrderCards(user=buyer, role="buyer"), 5).get_page(number)

    # then it is the page the paginator gives
    assert page_facts(ours) == page_facts(theirs)
    assert page_facts(ours)[0] in (newest_first[:5], newest_first[5:10], newest_first[10:])


def test_page_two_reads_the_second_page(buyer):
    made = orders_of(buyer, 7)
    newest_first = [o.number for o in reversed(made)]

    page = first_page_or_paginate(OrderCards(user=buyer, role="buyer"), "2", 5)

    assert page_facts(page) == (newest_first[5:], 2, 2, 7, True)


def test_a_queryset_pages_the_same_way(buyer, django_assert_num_queries):
    made = orders_of(buyer, 3)
    queryset = Order.objects.filter(buyer=buyer).order_by("-placed_at", "-id")

    with django_assert_num_queries(1):
        page = first_page_or_paginate(queryset, None, 10)
        facts = page_facts(page)

    assert facts == ([o.number for o in reversed(made)], 1, 1, 3, False)


# --- RowLinks -------------------------------------------------------------------------------

ROW_LINK_NAMES = [
    "order-detail",
    "refund-start",
    "case-detail",
    "dispute-detail",
    "dispute-new",
    "seller-public",
]


def reversed_or_error(name: str, key: object) -> str | type[Exception]:
    try:
        return reverse(name, args=[key])
    except NoReverseMatch:
        return NoReverseMatch


def linked_or_error(links: RowLinks, name: str, key: object) -> str | type[Exception]:
    try:
        return links(name, key)
    except NoReverseMatch:
        return NoReverseMatch


def test_row_links_equal_reverse_for_the_order_lists_keys():
    # given the keys the order list links with: order numbers, public ids and shop slugs
    links = RowLinks()
    keys = {
        "order-detail": ["ORD-100001", "MP-2026-03-01-77", "a_b.c~d"],
        "refund-start": ["ORD-100001", "42"],
        "case-detail": [uuid.uuid4(), str(uuid.uuid4())],
        "dispute-detail": [uuid.uuid4(), uuid.UUID("12345678-1234-5678-1234-567812345678")],
        "dispute-new": [uuid.uuid4()],
        "seller-public": ["sams-shop", "shop_2", "UPPER-case-9"],
    }

    # when each is linked twice (the second time from the cached halves)
    for name in ROW_LINK_NAMES:
        for key in keys[name]:
            for _ in range(2):
                # then it is what reverse() gives
                assert links(name, key) == reverse(name, args=[key]), (name, key)

    assert links("order-detail", "ORD-1") == "/orders/ORD-1/"
    assert links("refund-start", "ORD-1") == "/orders/ORD-1/refund/"
    case_id = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
    assert links("case-detail", case_id) == f"/refunds/{case_id}/"
    assert links("dispute-new", case_id) == f"/refunds/{case_id}/dispute/"
    assert links("dispute-detail", case_id) == f"/disputes/{case_id}/"
    assert links("seller-public", "sams-shop") == "/sellers/sams-shop/"


@pytest.mark.parametrize("name", ROW_LINK_NAMES)
@pytest.mark.parametrize("key", ["A B/ü", "A B", "ü", "a+b", "50%", "x?y=1", "#frag", "a&b"])
def test_row_links_with_keys_that_need_quoting_equal_reverse(name, key):
    links = RowLinks()
    linked_or_error(links, name, "warm-up-key")  # the route is learnt before the odd key

    assert linked_or_error(links, name, key) == reversed_or_error(name, key)


def test_row_links_quote_a_key_as_reverse_does():
    links = RowLinks()

    assert links("order-detail", "A B") == reverse("order-detail", args=["A B"])
    assert links("order-detail", "A B") == "/orders/A%20B/"
    assert links("order-detail", "ü") == "/orders/%C3%BC/"
    with pytest.raises(NoReverseMatch):
        links("order-detail", "A B/ü")


def test_a_name_without_an_argument_goes_through_reverse():
    # "order-list" takes no key: the stand-in does not fit, reverse() decides
    with pytest.raises(NoReverseMatch):
        RowLinks()("order-list", "ORD-1")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("case-detail", "not-a-uuid"),
        ("dispute-detail", "ORD-1"),
        ("dispute-new", str(uuid.UUID(int=255)).upper()),
        ("seller-public", "sam.s"),
        ("seller-public", "x~y"),
    ],
)
def test_row_links_with_keys_the_converter_rejects_equal_reverse(name, key):
    assert linked_or_error(RowLinks(), name, key) == reversed_or_error(name, key)


# --- OrderCards -------------------------------------------------------------------------------


@pytest.fixture
def market(buyer, other_buyer, seller, other_seller):
    """Orders of two buyers at two sellers (the first seller owns two shops), placed at
    distinct moments and two at the same moment (the id decides between them)."""
    sams, sams_second = seller.shops.get(), ShopFactory(owner=seller, name="Sam's Outlet")
    saras = other_seller.shops.get()
    plan = [
        (buyer, sams, 0),
        (buyer, saras, 1),
        (other_buyer, sams_second, 2),
        (buyer, sams_second, 3),
        (buyer, sams, 3),  # the same moment as the one before it
        (other_buyer, saras, 4),
        (buyer, saras, 5),
        (other_buyer, sams, 6),
        (buyer, sams, -2),
    ]
    for index, (who, shop, hours) in enumerate(plan):
        OrderFactory(
            buyer=who,
            shop=shop,
            number=f"MKT-{index}",
            placed_at=T0 + timedelta(hours=hours),
            total=Decimal("10.00") + index,
        )


def orm_numbers(**filters) -> list[str]:
    qs = Order.objects.filter(**filters).order_by("-placed_at", "-id")
    return list(qs.values_list("number", flat=True))


@pytest.mark.parametrize("role", ["buyer", "seller"])
@pytest.mark.parametrize("window", [(0, 3), (2, 5), (0, 100), (4, 6), (10, 20), (3, 3)])
def test_cards_slice_as_the_queryset_does(request, market, role, window):
    # given the orders a user bought or sold
    user = request.getfixturevalue(role)
    filters = {"buyer": user} if role == "buyer" else {"shop__owner": user}
    expected = orm_numbers(**filters)

    # when a slice of their cards is read
    start, stop = window
    cards = OrderCards(user=user, role=role)[start:stop]

    # then it is the queryset's slice, newest first
    assert [c.number for c in cards] == expected[start:stop]


def test_cards_are_newest_first_with_ties_by_id(buyer, seller, market):
    assert [c.number for c in OrderCards(user=buyer, role="buyer")[0:50]] == [
        "MKT-6",
        "MKT-4",
        "MKT-3",
        "MKT-1",
        "MKT-0",
        "MKT-8",
    ]
    assert [c.number for c in OrderCards(user=seller, role="seller")[0:50]] == [
        "MKT-7",
        "MKT-4",
        "MKT-3",
        "MKT-2",
        "MKT-0",
        "MKT-8",
    ]


@pytest.mark.parametrize("role", ["buyer", "seller"])
def test_cards_count_as_the_queryset_does(request, market, role, django_assert_num_queries):
    user = request.getfixturevalue(role)
    filters = {"buyer": user} if role == "buyer" else {"shop__owner": user}

    with django_assert_num_queries(1):
        total = OrderCards(user=user, role=role).count()

    assert total == Order.objects.filter(**filters).count() == 6


def test_cards_of_a_user_without_orders_are_empty(db, django_assert_num_queries):
    nobody = UserFactory(email="nobody@example.com")

    assert OrderCards(user=nobody, role="buyer").count() == 0
    assert OrderCards(user=nobody, role="seller")[0:10] == []


def test_cards_carry_the_cards_fields_as_the_orm_loads_them(buyer, seller, market):
    card_fields = (
        "id",
        "number",
        "buyer_id",
        "shop_id",
        "currency",
        "total",
        "reserved",
        "payment_method",
        "card_brand",
        "card_last4",
        "placed_at",
        "deliver_by",
        "shipped_at",
        "delivered_at",
        "return_policy",
        "status",
    )
    for user, role in ((buyer, "buyer"), (seller, "seller")):
        for card in OrderCards(user=user, role=role)[0:50]:
            assert_same_fields(card, Order.objects.get(pk=card.pk), card_fields)
            assert card.get_deferred_fields() == set(all_fields(Order)) - set(card_fields)


def test_buyer_cards_have_shop_and_buyer_without_further_queries(
    buyer, market, django_assert_num_queries
):
    with django_assert_num_queries(1):
        cards = OrderCards(user=buyer, role="buyer")[0:50]
        seen = [
            (c.number, c.shop.name, c.shop.slug, c.shop.owner_id, c.buyer.display_name)
            for c in cards
        ]

    expected = [
        (o.number, o.shop.name, o.shop.slug, o.shop.owner_id, o.buyer.display_name)
        for o in Order.objects.filter(buyer=buyer)
        .select_related("shop", "buyer")
        .order_by("-placed_at", "-id")
    ]
    assert seen == expected
    assert {c.buyer.pk for c in cards} == {buyer.pk}


def test_seller_cards_have_shop_and_buyer_without_further_queries(
    seller, market, django_assert_num_queries
):
    with django_assert_num_queries(1):
        cards = OrderCards(user=seller, role="seller")[0:50]
        seen = [
            (c.number, c.shop.name, c.buyer.pk, c.buyer.email, c.buyer.display_name) for c in cards
        ]

    expected = [
        (o.number, o.shop.name, o.buyer.pk, o.buyer.email, o.buyer.display_name)
        for o in Order.objects.filter(shop__owner=seller)
        .select_related("shop", "buyer")
        .order_by("-placed_at", "-id")
    ]
    assert seen == expected
    assert {name for _, name, *_ in seen} == {"Sam's Shop", "Sam's Outlet"}
    assert {email for *_, email, _ in seen} == {"buyer@example.com", "other.buyer@example.com"}


def test_one_users_cards_never_hold_anothers_orders(
    buyer, other_buyer, seller, other_seller, market
):
    for user, role, mine in (
        (buyer, "buyer", lambda o: o.buyer_id == buyer.pk),
        (other_buyer, "buyer", lambda o: o.buyer_id == other_buyer.pk),
        (seller, "seller", lambda o: o.shop.owner_id == seller.pk),
        (other_seller, "seller", lambda o: o.shop.owner_id == other_seller.pk),
    ):
        cards = OrderCards(user=user, role=role)[0:100]
        assert cards, (user, role)
        assert all(mine(c) for c in cards), (user, role)
    buyers_numbers = {c.number for c in OrderCards(user=buyer, role="buyer")[0:100]}
    others_numbers = {c.number for c in OrderCards(user=other_buyer, role="buyer")[0:100]}
    assert buyers_numbers.isdisjoint(others_numbers)
    assert len(buyers_numbers | others_numbers) == Order.objects.count() == 9
    # a buyer who owns no shop sells nothing
    assert OrderCards(user=buyer, role="seller")[0:100] == []


@pytest.mark.parametrize("role", ["staff", "", "Buyer", None])
def test_cards_refuse_an_unknown_role(buyer, role):
    with pytest.raises(ValueError, match="role must be buyer or seller"):
        OrderCards(user=buyer, role=role)


@pytest.mark.parametrize("key", [slice(0, None), slice(3, None), slice(0, 10, 2), 0, "0"])
def test_cards_take_only_a_slice_with_an_end_and_no_step(buyer, key, django_assert_num_queries):
    cards = OrderCards(user=buyer, role="buyer")

    with django_assert_num_queries(0), pytest.raises(TypeError):
        cards[key]


# --- order_item_lines -----------------------------------------------------------------------


def test_item_lines_group_by_order_in_the_order_bought(buyer, seller, django_assert_num_queries):
    # given three orders: two lines, three lines, none
    shop = seller.shops.get()
    first = OrderFactory(buyer=buyer, shop=shop)
    second = OrderFactory(
        buyer=buyer,
        shop=shop,
        items=[
            ("SKU-9", "Zebra print", 3, Decimal("1.00")),
            ("SKU-1", "Apple box", 1, Decimal("2.00")),
            ("SKU-5", "Mug", 4, Decimal("3.00")),
        ],
    )
    empty = OrderFactory(buyer=buyer, shop=shop)
    OrderItem.objects.filter(order=empty).delete()
    unrelated = OrderFactory(buyer=buyer, shop=shop)

    # when the lines of the three are read at once
    with django_assert_num_queries(1):
        lines = order_item_lines(order_ids=[second.pk, empty.pk, first.pk])

    # then each order has its lines in the order they were bought (by id), the empty none
    assert dict(lines) == {
        first.pk: [(2, "Travel mug"), (1, "Tea sampler")],
        second.pk: [(3, "Zebra print"), (1, "Apple box"), (4, "Mug")],
    }
    assert lines[empty.pk] == []
    assert unrelated.pk not in lines
    for order in (first, second):
        assert lines[order.pk] == [
            (i.quantity, i.title) for i in OrderItem.objects.filter(order=order).order_by("id")
        ]


def test_item_lines_of_no_orders_cost_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        lines = order_item_lines(order_ids=[])

    assert dict(lines) == {}


# --- update ------------------------------------------------------------------------------


def test_update_writes_what_the_orm_update_writes(order):
    from notifications.models import Notification, Role, Status

    event = Event.objects.create(order=order, kind="refund.requested", payload={})
    token, other_token = uuid.uuid4(), uuid.uuid4()
    made = [
        Notification.objects.create(
            event=event,
            recipient=user,
            email=user.email,
            role=Role.BUYER if user == order.buyer else Role.SELLER,
            kind="refund.requested",
            link="https://portal.test/x/",
            status=Status.SENDING,
            claim_token=token,
        )
        for user in (order.buyer, order.shop.owner)
    ]
    when = timezone.now().replace(microsecond=123456)
    values = {
        "status": Status.SENT,
        "sent_at": when,
        "claim_token": None,
        "subject": "Ünïcode — subject",
        "updated_at": when,
    }

    # when one row is updated by hand-written SQL and the other by the ORM
    assert (
        sql.update(Notification, where={"id": made[0].pk, "claim_token": token}, values=values) == 1
    )
    Notification.objects.filter(pk=made[1].pk, claim_token=token).update(**values)

    # then both rows hold the same values (aware datetime, NULL, text)
    by_sql, by_orm = (Notification.objects.get(pk=n.pk) for n in made)
    for name in values:
        assert getattr(by_sql, name) == getattr(by_orm, name), name
    assert by_sql.sent_at == when and by_sql.claim_token is None

    # and a condition that matches nothing updates nothing
    assert (
        sql.update(
            Notification, where={"id": made[0].pk, "claim_token": other_token}, values=values
        )
        == 0
    )


def test_update_refuses_what_it_cannot_express():
    with pytest.raises(ValueError, match="equality"):
        sql.update(Order, where={"shipped_at": None}, values={"carrier": "x"})
    with pytest.raises(ValueError, match="no column 'nope'"):
        sql.update(Order, where={"id": 1}, values={"nope": "x"})
    with pytest.raises(ValueError, match="condition and a value"):
        sql.update(Order, where={}, values={"carrier": "x"})
