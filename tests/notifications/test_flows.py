"""The real transitions, reminders and sweeps each tell the right people (docs/rules.md,
Notifications), with the deadline in the marketplace zone and the reader's own, and a link to act
on.

Personas: the buyer lives in Europe/Berlin, the seller in America/Los_Angeles, staff in the
marketplace zone (Asia/Shanghai); staff alerts also go to the ops address."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from disputes import services as disputes
from kernel import windows
from orders.services import message_post_on_order
from payouts.models import Payout
from payouts.services import order_cancel_by_buyer, order_cancel_out_of_stock, payout_attempt
from payouts.sweeps import payouts_overdue_alert
from refunds import services as refunds
from refunds.evidence import evidence_add
from refunds.sweeps import refund_sweeps_run
from tests.disputes.factories import dispute_for, with_statement
from tests.notifications.conftest import OPS, dispatch, html_of, mails_to, the_mail_to
from tests.refunds.factories import SECOND, file_refund, png_bytes, reload, upload

SITE = settings.SITE_URL


def both(instant, user) -> str:
    return windows.format_both(instant, user.time_zone)


def assert_deadline(message, instant, user) -> None:
    shown = both(instant, user)
    assert "Asia/Shanghai" in shown and user.time_zone in shown
    assert shown in message.body
    assert shown in html_of(message)


@pytest.fixture(autouse=True)
def _quiet_start():
    mail.outbox.clear()


def fresh_outbox():
    mail.outbox.clear()


# --- refund cases ---------------------------------------------------------------------------


def test_a_filed_request_tells_the_seller_what_to_do_and_by_when(order, buyer, seller):
    case = file_refund(order, reason="changed_mind", amount="59.90")

    dispatch()

    message = the_mail_to(seller.email)
    assert message.subject == f"New refund request on order {order.number}: please answer"
    assert "59.90 USD" in message.body and "changed my mind" in message.body
    assert_deadline(message, case.respond_by, seller)
    assert f"{SITE}/refunds/{case.public_id}/" in message.body
    assert mails_to(buyer.email) == []


def test_an_accepted_return_gives_the_buyer_the_rma_and_the_slip(order, buyer, seller):
    case = file_refund(order, return_item=True)
    dispatch()
    fresh_outbox()

    case = refunds.refund_accept(case=case, actor=seller)
    dispatch()

    message = the_mail_to(buyer.email)
    assert case.return_number in message.subject
    assert case.return_number in message.body
    assert f"{SITE}/refunds/{case.public_id}/slip/" in message.body
    assert f'href="{SITE}/refunds/{case.public_id}/slip/"' in html_of(message)
    assert_deadline(message, case.return_by, buyer)
    assert mails_to(seller.email) == []


def test_an_accepted_refund_without_return_names_the_payment_method(order, buyer, seller):
    case = file_refund(order, amount="20.00")
    dispatch()
    fresh_outbox()

    refunds.refund_accept(case=case, actor=seller)
    dispatch()

    message = the_mail_to(buyer.email)
    assert message.subject == f"Refund approved on order {order.number}"
    assert "20.00 USD" in message.body and "Visa ••4242" in message.body


def test_an_offer_asks_the_buyer_to_answer_by_its_deadline(order, buyer, seller):
    case = file_refund(order, amount="59.90")
    dispatch()
    fresh_outbox()

    case = refunds.refund_offer(case=case, actor=seller, amount="30.00")
    dispatch()

    message = the_mail_to(buyer.email)
    assert "30.00 USD" in message.subject
    assert_deadline(message, case.offer_by, buyer)


def test_a_rejection_quotes_the_reason_and_gives_the_dispute_deadline(order, buyer, seller):
    case = file_refund(order)
    dispatch()
    fresh_outbox()

    case = refunds.refund_reject(case=case, actor=seller, reason="Used & <scratched>")
    dispatch()

    message = the_mail_to(buyer.email)
    assert message.subject == f"Your refund request on order {order.number} was rejected"
    assert "Used & <scratched>" in message.body
    assert "Used &amp; &lt;scratched&gt;" in html_of(message)
    assert_deadline(message, case.dispute_by, buyer)


def test_withdrawing_tells_both_and_offers_the_buyer_a_dispute(order, buyer, seller):
    case = file_refund(order)
    dispatch()
    fresh_outbox()

    case = refunds.refund_withdraw(case=case, actor=buyer)
    dispatch()

    assert_deadline(the_mail_to(buyer.email), case.dispute_by, buyer)
    assert "withdrew" in the_mail_to(seller.email).subject


def test_a_shipped_return_asks_the_seller_to_confirm_and_confirming_tells_the_buyer(
    order, buyer, seller
):
    case = refunds.refund_accept(case=file_refund(order, return_item=True), actor=seller)
    dispatch()
    fresh_outbox()

    case = refunds.refund_ship_return(
        case=case, actor=buyer, carrier="DHL", tracking_number="JD0001"
    )
    dispatch()
    message = the_mail_to(seller.email)
    assert case.return_number in message.subject
    assert_deadline(message, case.confirm_by, seller)
    fresh_outbox()

    refunds.refund_confirm_return(case=case, actor=seller)
    dispatch()
    message = the_mail_to(buyer.email)
    assert "59.90 USD" in message.body and "Visa ••4242" in message.body
    assert mails_to(seller.email) == []


def test_a_paid_refund_tells_buyer_and_seller_the_amount_and_the_card(order, buyer, seller):
    case = refunds.refund_accept(case=file_refund(order, amount="20.00"), actor=seller)
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
    dispatch()
    fresh_outbox()

    payout_attempt(payout_id=payout.pk)
    dispatch()

    to_buyer, to_seller = the_mail_to(buyer.email), the_mail_to(seller.email)
    assert to_buyer.subject == f"Refund paid: 20.00 USD to Visa ••4242 ({order.number})"
    assert "Visa ••4242" in to_seller.body and "20.00 USD" in to_seller.subject
    assert f"{SITE}/refunds/{case.public_id}/" in to_buyer.body
    assert mails_to(OPS) == []


def test_a_file_added_to_a_case_tells_the_other_party_and_staff_files_tell_both(
    order, buyer, seller, staff, private_storage
):
    case = file_refund(order, amount="20.00")
    dispatch()
    fresh_outbox()

    # when the buyer adds a photo, the seller is told (the buyer knows what they added)
    evidence_add(case=case, actor=buyer, upload=upload("cracked <mug>.png", png_bytes()))
    dispatch()

    message = the_mail_to(seller.email)
    assert message.subject == f"New file on the refund case for order {order.number}"
    assert "The buyer added a file" in message.body and "cracked <mug>.png" in message.body
    assert "cracked &lt;mug&gt;.png" in html_of(message)
    assert f"{SITE}/refunds/{case.public_id}/" in message.body
    assert mails_to(buyer.email) == []
    fresh_outbox()

    # when staff add one, both parties are told
    evidence_add(case=case, actor=staff, upload=upload("label.png", png_bytes()))
    dispatch()

    assert "Our team added a file" in the_mail_to(buyer.email).body
    assert "Our team added a file" in the_mail_to(seller.email).body
    assert mails_to(staff.email) == []


def test_a_failing_payout_alerts_staff_and_the_ops_address(order, seller, staff, settings):
    settings.FAKE_GATEWAY_MODE = "fail"
    case = refunds.refund_accept(case=file_refund(order, amount="20.00"), actor=seller)
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
    dispatch()
    fresh_outbox()

    payout_attempt(payout_id=payout.pk)
    dispatch()

    for address in (staff.email, OPS):
        message = the_mail_to(address)
        assert message.subject.startswith("Payout failing: 20.00 USD on order")
        assert f"{SITE}/admin/payouts/payout/" in message.body
    assert {a for m in mail.outbox for a in m.to} == {staff.email, OPS}


def test_a_cancelled_order_tells_buyer_and_seller(order, buyer, seller):
    order_cancel_by_buyer(order=order, actor=buyer)
    dispatch()

    assert "Please do not ship it" in the_mail_to(seller.email).body
    message = the_mail_to(buyer.email)
    assert "59.90 USD" in message.subject and "Visa ••4242" in message.body
    assert f"{SITE}/orders/{order.number}/" in message.body


def test_an_out_of_stock_cancellation_says_so(order, buyer, seller):
    order_cancel_out_of_stock(order=order, actor=seller)
    dispatch()

    assert "out of stock" in the_mail_to(buyer.email).body


def test_a_message_tells_the_other_party_only(order, buyer, seller):
    message_post_on_order(order=order, author=buyer, body="Where is my parcel?")
    dispatch()

    message = the_mail_to(seller.email)
    assert message.subject == f"New message from the buyer on order {order.number}"
    assert "Where is my parcel?" in message.body
    assert mails_to(buyer.email) == []
    fresh_outbox()

    message_post_on_order(order=order, author=seller, body="It left yesterday.")
    dispatch()
    assert "It left yesterday." in the_mail_to(buyer.email).body
    assert mails_to(seller.email) == []


# --- system transitions and reminders ------------------------------------------------------


def test_seller_silence_auto_accepts_and_tells_both(order, buyer, seller):
    case = file_refund(order, return_item=True)
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.respond_by + SECOND)
    dispatch()

    case = reload(case)
    message = the_mail_to(buyer.email)
    assert case.return_number in message.subject
    assert_deadline(message, case.return_by, buyer)
    assert "accepted automatically" in the_mail_to(seller.email).subject


def test_the_seller_is_reminded_when_24_hours_remain(order, seller):
    case = file_refund(order)
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.respond_by - timedelta(hours=24))
    dispatch()
    refund_sweeps_run(now=case.respond_by - timedelta(hours=23))
    dispatch()

    message = the_mail_to(seller.email)
    assert message.subject.startswith("Reminder: answer the refund request")
    assert_deadline(message, case.respond_by, seller)


def test_the_buyer_is_reminded_48_hours_before_the_return_deadline(order, buyer, seller):
    case = refunds.refund_accept(case=file_refund(order, return_item=True), actor=seller)
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.return_by - timedelta(hours=48))
    dispatch()

    message = the_mail_to(buyer.email)
    assert message.subject == f"Reminder: ship your return for order {order.number}"
    assert case.return_number in message.body
    assert f"{SITE}/refunds/{case.public_id}/slip/" in message.body
    assert_deadline(message, case.return_by, buyer)


def test_an_unshipped_return_expires_and_both_are_told(order, buyer, seller):
    case = refunds.refund_accept(case=file_refund(order, return_item=True), actor=seller)
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.return_by + SECOND)
    dispatch()

    case = reload(case)
    assert_deadline(the_mail_to(buyer.email), case.dispute_by, buyer)
    assert "expired" in the_mail_to(seller.email).body


def test_a_lapsed_offer_closes_the_case_with_the_dispute_deadline(order, buyer, seller):
    case = refunds.refund_offer(case=file_refund(order), actor=seller, amount="10.00")
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.offer_by + SECOND)
    dispatch()

    case = reload(case)
    message = the_mail_to(buyer.email)
    assert "lapsed" in message.subject
    assert_deadline(message, case.dispute_by, buyer)
    assert_deadline(the_mail_to(seller.email), case.dispute_by, seller)


def test_seller_silence_after_the_return_shipped_assumes_receipt(order, buyer, seller):
    case = refunds.refund_accept(case=file_refund(order, return_item=True), actor=seller)
    case = refunds.refund_ship_return(
        case=case, actor=buyer, carrier="DHL", tracking_number="JD0001"
    )
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.confirm_by + SECOND)
    dispatch()

    assert "taken as received" in the_mail_to(buyer.email).subject
    assert "taken as received" in the_mail_to(seller.email).subject


def test_the_buyer_is_reminded_12_hours_before_the_dispute_window_ends(order, buyer, seller):
    case = refunds.refund_reject(case=file_refund(order), actor=seller, reason="No.")
    dispatch()
    fresh_outbox()

    refund_sweeps_run(now=case.dispute_by - timedelta(hours=12))
    dispatch()

    message = the_mail_to(buyer.email)
    assert message.subject == f"Last hours to open a dispute on order {order.number}"
    assert "rejected by the seller" in message.body
    assert_deadline(message, case.dispute_by, buyer)


def test_a_payout_unpaid_48_hours_after_approval_alerts_staff_and_tells_the_buyer(
    order, buyer, seller, staff, settings
):
    settings.FAKE_GATEWAY_MODE = "fail"
    case = refunds.refund_accept(case=file_refund(order, amount="20.00"), actor=seller)
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
    payout_attempt(payout_id=payout.pk)
    dispatch()
    fresh_outbox()
    pay_by = windows.payout_hard(approved_at=payout.created_at)

    assert payouts_overdue_alert(now=pay_by - SECOND) == 0
    assert payouts_overdue_alert(now=pay_by) == 1
    assert payouts_overdue_alert(now=pay_by + timedelta(hours=1)) == 0
    dispatch()

    to_buyer = the_mail_to(buyer.email)
    assert "delayed" in to_buyer.subject
    assert "20.00 USD" in to_buyer.body and "Visa ••4242" in to_buyer.body
    assert_deadline(to_buyer, pay_by, buyer)
    assert f"{SITE}/refunds/{case.public_id}/" in to_buyer.body
    for address in (staff.email, OPS):
        message = the_mail_to(address)
        assert message.subject.startswith("Payout overdue (48 h): 20.00 USD")
    assert mails_to(seller.email) == []


def test_a_paid_payout_is_never_overdue(order, seller):
    case = refunds.refund_accept(case=file_refund(order, amount="20.00"), actor=seller)
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")
    payout_attempt(payout_id=payout.pk)

    later = windows.payout_hard(approved_at=payout.created_at) + timedelta(days=1)
    assert payouts_overdue_alert(now=later) == 0


def test_enforce_deadlines_runs_the_payout_overdue_sweep(order, seller, settings):
    from refundportal.deadlines import enforce_all

    settings.FAKE_GATEWAY_MODE = "fail"
    case = refunds.refund_accept(case=file_refund(order, amount="20.00"), actor=seller)
    payout = Payout.objects.get(idempotency_key=f"refund:{case.public_id}")

    moved = enforce_all(now=windows.payout_hard(approved_at=payout.created_at) + SECOND)

    assert moved["payout_overdue"] == 1


# --- disputes -------------------------------------------------------------------------------


def test_an_opened_dispute_tells_both_parties_and_staff(buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    fresh_outbox()
    # the rejection before it was dispatched together with the opening: only the opening left
    dispatch()
    mail.outbox[:] = [m for m in mail.outbox if "dispute" in m.subject.lower()]

    to_seller = the_mail_to(seller.email)
    assert "add your statement" in to_seller.subject
    assert_deadline(to_seller, dispute.statement_by, seller)
    assert f"{SITE}/disputes/{dispute.public_id}/" in to_seller.body
    assert_deadline(the_mail_to(buyer.email), dispute.decision_target, buyer)
    for address in (staff.email, OPS):
        message = the_mail_to(address)
        assert f"{SITE}/admin/disputes/dispute/" in message.body
        assert windows.format_both(dispute.decision_due, staff.time_zone) in message.body


def test_a_statement_info_request_and_decision_reach_the_parties(buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller, opened_at=timezone.now() - timedelta(hours=1))
    dispatch()
    fresh_outbox()

    dispute = with_statement(dispute)
    dispatch()
    assert "answered your dispute" in the_mail_to(buyer.email).subject
    assert mails_to(seller.email) == []
    fresh_outbox()

    disputes.dispute_request_info(
        dispute=dispute, staff=staff, party="seller", question="Send the <courier> receipt."
    )
    dispatch()
    asked = the_mail_to(seller.email)
    assert asked.subject.startswith("Action needed")
    assert "Send the <courier> receipt." in asked.body
    assert "Send the &lt;courier&gt; receipt." in html_of(asked)
    assert "nothing for you to do" in the_mail_to(buyer.email).body
    fresh_outbox()

    disputes.dispute_post_message(dispute=dispute, author=seller, body="Receipt attached.")
    dispatch()
    assert "answered" in the_mail_to(staff.email).subject
    fresh_outbox()

    disputes.dispute_decide(
        dispute=dispute,
        staff=staff,
        outcome="buyer",
        amount="40.00",
        rationale="The photos show the crack.",
    )
    dispatch()
    to_buyer = the_mail_to(buyer.email)
    assert "40.00 USD refunded to you" in to_buyer.subject
    assert "The photos show the crack." in to_buyer.body
    assert "for the buyer" in the_mail_to(seller.email).subject


def test_a_withdrawn_dispute_tells_both(buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    dispatch()
    fresh_outbox()

    disputes.dispute_withdraw(dispute=dispute, buyer=buyer)
    dispatch()

    assert "withdrew" in the_mail_to(buyer.email).subject
    assert "withdrew" in the_mail_to(seller.email).subject


def test_sla_flags_alert_staff_and_past_due_the_buyer_too(buyer, seller, staff):
    from disputes.sweeps import dispute_sweeps_run

    dispute = dispute_for(buyer=buyer, seller=seller)
    dispatch()
    fresh_outbox()

    dispute_sweeps_run(now=dispute.statement_by + SECOND)
    dispatch()
    assert "ready to decide" in the_mail_to(staff.email).subject
    assert mails_to(buyer.email) == []
    fresh_outbox()

    dispute_sweeps_run(now=dispute.decision_target + SECOND)
    dispatch()
    assert "decision target" in the_mail_to(staff.email).subject
    assert mails_to(buyer.email) == []
    fresh_outbox()

    dispute_sweeps_run(now=dispute.decision_due + SECOND)
    dispatch()
    assert the_mail_to(staff.email).subject.startswith("Escalation")
    assert the_mail_to(OPS).subject.startswith("Escalation")
    to_buyer = the_mail_to(buyer.email)
    assert "delayed" in to_buyer.subject
    assert_deadline(to_buyer, dispute.decision_due, buyer)
