"""Every kind of notice: who receives it, with its own template, the deadline in both zones and
the link (docs/rules.md, Notifications). Payloads are the catalogue's samples, written through
`event_record` as the domain services write them; `test_flows.py` drives the real services."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.conf import settings

from kernel import windows
from notifications.catalog import DEADLINE_KEYS, sample_payload, told_kinds
from notifications.services import template_exists
from tests.notifications.conftest import OPS, dispatch, html_of, mails_to, record


@pytest.fixture
def people(buyer, seller, staff):
    return {"buyer": buyer, "seller": seller, "staff": staff}


def expected_link(kind: str, role: str, payload: dict) -> str:
    site = settings.SITE_URL
    if role == "staff":
        if kind.startswith("dispute."):
            return f"{site}/admin/disputes/dispute/"
        if kind.startswith("payout."):
            return f"{site}/admin/payouts/payout/"
        return f"{site}/admin/refunds/refundcase/"
    if payload.get("dispute_id"):
        return f"{site}/disputes/{payload['dispute_id']}/"
    if payload.get("case_id"):
        return f"{site}/refunds/{payload['case_id']}/"
    return f"{site}/orders/{payload['order_number']}/"


@pytest.mark.parametrize("kind", sorted(told_kinds()))
def test_each_kind_reaches_exactly_its_recipients_with_deadlines_in_both_zones(kind, order, people):
    # given an event of this kind, recorded for the roles the catalog names
    roles = told_kinds()[kind]
    payload = sample_payload(kind)
    payload["order_number"] = order.number
    record(order, kind, notify=roles, **payload)

    # when the dispatcher runs
    outbox = dispatch()

    # then each role's person gets one email, and nobody else gets any
    expected = {people[r].email for r in roles}
    if "staff" in roles:
        expected.add(OPS)
    assert sorted(a for m in outbox for a in m.to) == sorted(expected)
    assert template_exists(kind), f"{kind} falls back to the generic template"
    for role in roles:
        person = people[role]
        [message] = mails_to(person.email)
        html = html_of(message)
        assert message.subject and "{" not in message.subject and "\n" not in message.subject
        assert order.number in message.subject + message.body
        link = expected_link(kind, role, payload)
        assert link in message.body
        assert f'href="{link}"' in html
        for key in DEADLINE_KEYS:
            if key not in payload:
                continue
            shown = windows.format_both(datetime.fromisoformat(payload[key]), person.time_zone)
            if shown in message.body:
                # A deadline an email shows, it shows in the marketplace zone and the reader's.
                assert shown in html
                assert "Asia/Shanghai" in shown
                if person.time_zone != "Asia/Shanghai":
                    assert person.time_zone in shown
        # and the deadline that binds this reader is there, in both zones
        key = SHOWS.get(kind, {}).get(role)
        if key:
            shown = windows.format_both(datetime.fromisoformat(payload[key]), person.time_zone)
            assert shown in message.body, f"{kind} to the {role} does not show {key}"
            assert shown in html


# The deadline each reader must act by (or is told about), per kind and role.
SHOWS = {
    "refund.requested": {"seller": "respond_by"},
    "refund.accepted": {"buyer": "return_by"},
    "refund.auto_accepted": {"buyer": "return_by", "seller": "return_by"},
    "refund.offer_made": {"buyer": "offer_by"},
    "refund.offer_declined": {"buyer": "dispute_by", "seller": "dispute_by"},
    "refund.offer_lapsed": {"buyer": "dispute_by", "seller": "dispute_by"},
    "refund.rejected": {"buyer": "dispute_by"},
    "refund.return_shipped": {"seller": "confirm_by"},
    "refund.return_expired": {"buyer": "dispute_by", "seller": "dispute_by"},
    "refund.withdrawn": {"buyer": "dispute_by"},
    "reminder.seller_response": {"seller": "respond_by"},
    "reminder.return_shipping": {"buyer": "return_by"},
    "reminder.dispute_window": {"buyer": "dispute_by"},
    "payout.overdue": {"buyer": "pay_by", "staff": "pay_by"},
    "dispute.opened": {
        "buyer": "decision_target",
        "seller": "statement_by",
        "staff": "decision_due",
    },
    "dispute.statement_added": {"buyer": "decision_target"},
    "dispute.info_requested": {"buyer": "decision_due", "seller": "decision_due"},
    "dispute.info_answered": {"staff": "decision_due"},
    "dispute.statement_window_lapsed": {"staff": "statement_by"},
    "dispute.sla_target_passed": {"staff": "decision_target"},
    "dispute.sla_due_passed": {"buyer": "decision_due", "staff": "decision_due"},
}


def test_the_staff_alert_address_reads_the_marketplace_zone_only(order, staff):
    payload = sample_payload("payout.overdue")
    record(order, "payout.overdue", notify=("staff",), **payload)

    dispatch()

    [message] = mails_to(OPS)
    shown = windows.format_both(datetime.fromisoformat(payload["pay_by"]), None)
    assert shown in message.body
    assert "·" not in shown


def test_an_unknown_kind_goes_out_with_the_generic_template(order, buyer):
    record(order, "refund.something_new", notify=("buyer",), respond_by="2026-11-10T12:00:00+00:00")

    dispatch()

    [message] = mails_to(buyer.email)
    assert message.subject == f"Update on order {order.number}"
    assert "10 Nov 2026, 20:00 Asia/Shanghai · 10 Nov 2026, 13:00 Europe/Berlin" in message.body


def test_user_text_is_escaped_in_html_and_verbatim_in_text(order, seller):
    record(
        order,
        "message.posted",
        notify=("seller",),
        excerpt='<script>alert("x")</script> & "quotes"',
    )

    dispatch()

    [message] = mails_to(seller.email)
    html = html_of(message)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in html
    assert '<script>alert("x")</script> & "quotes"' in message.body


def test_a_shop_name_cannot_inject_a_header_or_markup_into_the_subject(order, buyer):
    order.shop.name = "Evil\r\nBcc: victim@example.com <b>"
    order.shop.save()
    record(order, "refund.offer_made", notify=("buyer",), offer_amount="10.000", amount="59.900")

    dispatch()

    [message] = mails_to(buyer.email)
    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.bcc == []
    assert message.subject.startswith("Partial refund offer")
    html = html_of(message)
    assert "victim@example.com &lt;b&gt;" in html
    assert "<b>" not in html


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("59.900", "59.90 USD"), ("1234567.500", "1,234,567.50 USD")],
    ids=["minor-unit", "thousands-grouped-as-on-the-pages"],
)
def test_amounts_use_the_currency_minor_unit(order, buyer, stored, shown):
    record(order, "payout.succeeded", notify=("buyer",), amount=stored)

    dispatch()

    [message] = mails_to(buyer.email)
    assert shown in message.subject
    assert "Visa ••4242" in message.subject
    assert stored not in message.body


def test_a_reason_reads_the_label_the_payload_carries(order, seller):
    record(
        order,
        "refund.requested",
        notify=("seller",),
        amount="9.000",
        reason="other",
        reason_label="Something the label says",
    )

    dispatch()

    assert "(reason: something the label says)" in mails_to(seller.email)[0].body


def test_an_event_written_before_payloads_carried_labels_still_names_its_reason(order, buyer):
    # given an event as it was written before: the codes, no labels
    record(
        order,
        "reminder.dispute_window",
        notify=("buyer",),
        closed_reason="offer_declined",
        dispute_by="2026-11-12T12:00:00+00:00",
    )

    dispatch()

    assert "is closed (offer declined)" in mails_to(buyer.email)[0].body
