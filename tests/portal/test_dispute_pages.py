"""The dispute form and page, and the seller dashboard."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from disputes import services as dispute_services
from disputes.models import Dispute, DisputeState
from refunds import services as refund_services
from refunds.models import Evidence, RefundCase
from tests.portal.conftest import client_for, delivered_order, file_case, png_upload
from tests.portal.helpers import login_redirect, queries_for, visible_text

pytestmark = pytest.mark.django_db


def open_dispute(case, buyer):  # type: ignore[no-untyped-def]
    return dispute_services.dispute_open(
        case=case,
        buyer=buyer,
        statement="The mug was cracked on arrival.",
        contact_name="Bea Buyer",
        contact_email="bea@example.com",
        desired_amount="59.90",
    )


def test_dispute_form_asks_what_the_marketplace_asks(rejected_case, buyer):
    page = client_for(buyer).get(f"/refunds/{rejected_case.public_id}/dispute/")
    text = visible_text(page)
    for words in (
        rejected_case.order.number,
        "Your name",
        "Contact email",
        "Phone",
        "What do you want back?",
        "The full amount: 59.90 USD",
        "Part of it",
        "Proof of payment (receipt)",
        "Shipping details",
        "Chat screenshots",
        "attached to the dispute automatically",
    ):
        assert words in text
    assert 'value="Bea Buyer"' in page.content.decode()


def test_buyer_opens_a_dispute_with_files(rejected_case, buyer):
    url = f"/refunds/{rejected_case.public_id}/dispute/"
    response = client_for(buyer).post(
        url,
        {
            "contact_name": "Bea Buyer",
            "contact_email": "bea@example.com",
            "contact_phone": "+49 30 1234567",
            "statement": "It arrived broken.",
            "outcome": "partial",
            "desired_amount": "30.00",
            "file_receipt": png_upload("receipt.png"),
            "file_chat": png_upload("chat.png"),
        },
        follow=True,
    )
    dispute = Dispute.objects.get()
    assert dispute.desired_amount == 30 and dispute.contact_phone == "+49 30 1234567"
    assert sorted(Evidence.objects.filter(for_dispute=True).values_list("kind", flat=True)) == [
        "chat",
        "receipt",
    ]
    text = visible_text(response)
    assert "Dispute opened." in text and "Seller's statement due" in text
    assert "Decision expected by" in text and "receipt.png" in text


def test_partial_outcome_needs_an_amount_and_keeps_the_statement(rejected_case, buyer):
    response = client_for(buyer).post(
        f"/refunds/{rejected_case.public_id}/dispute/",
        {
            "contact_name": "Bea",
            "contact_email": "bea@example.com",
            "statement": "Broken.",
            "outcome": "partial",
            "desired_amount": "",
        },
    )
    assert response.status_code == 400
    assert "Enter the part of the amount you want back." in visible_text(response)
    assert "Broken." in response.content.decode()
    assert not Dispute.objects.exists()


def test_a_dispute_on_an_open_case_is_explained_not_offered(requested_case, buyer):
    text = visible_text(client_for(buyer).get(f"/refunds/{requested_case.public_id}/dispute/"))
    assert "A dispute can be opened once a refund request is rejected" in text
    assert "Open the dispute" not in text


def test_dispute_pages_are_for_the_parties_only(rejected_case, buyer, other_buyer, seller):
    dispute = open_dispute(rejected_case, buyer)
    url = f"/disputes/{dispute.public_id}/"
    assert login_redirect(Client().get(url), url)
    assert client_for(other_buyer).get(url).status_code == 404
    assert client_for(other_buyer).post(url + "withdraw/").status_code == 404
    assert (
        client_for(other_buyer).get(f"/refunds/{rejected_case.public_id}/dispute/").status_code
        == 404
    )
    assert client_for(seller).get(f"/refunds/{rejected_case.public_id}/dispute/").status_code == 403


def test_dispute_page_costs_the_same_queries_with_n_or_3n_rows(rejected_case, buyer, seller):
    # given a dispute with messages, files and events from both parties
    dispute = open_dispute(rejected_case, buyer)
    url = f"/disputes/{dispute.public_id}/"

    def add(n: int) -> None:
        for i in range(n):
            author = buyer if i % 2 else seller
            dispute_services.dispute_post_message(dispute=dispute, author=author, body=f"m{i}")
            dispute_services.dispute_add_evidence(
                dispute=dispute, actor=author, upload=png_upload(f"p{i}.png"), kind="photo"
            )

    add(2)
    few = {who: queries_for(client_for(who), url) for who in (buyer, seller)}
    # when three times as many rows are added, then each party's page costs the same
    add(4)
    assert {who: queries_for(client_for(who), url) for who in (buyer, seller)} == few


def test_seller_adds_a_statement_and_the_buyer_reads_it(rejected_case, buyer, seller):
    dispute = open_dispute(rejected_case, buyer)
    url = f"/disputes/{dispute.public_id}/"
    seller_text = visible_text(client_for(seller).get(url))
    assert "Your side of the story" in seller_text and "No statement yet." in seller_text
    response = client_for(seller).post(url + "statement/", {"body": "It left intact."}, follow=True)
    assert "Your statement is on file." in visible_text(response)
    buyer_text = visible_text(client_for(buyer).get(url))
    assert "It left intact." in buyer_text and "The mug was cracked on arrival." in buyer_text
    assert "Your side of the story" not in visible_text(client_for(seller).get(url))


def test_info_requested_banner_and_reply(rejected_case, buyer, seller, staff):
    dispute = open_dispute(rejected_case, buyer)
    dispute_services.dispute_request_info(
        dispute=dispute,
        staff=staff,
        party="buyer",
        question="Do you have the courier's damage report?",
    )
    url = f"/disputes/{dispute.public_id}/"
    text = visible_text(client_for(buyer).get(url))
    assert "Our staff need more information from you" in text
    assert "Do you have the courier's damage report?" in text
    seller_text = visible_text(client_for(seller).get(url))
    assert "Our staff asked the buyer for more information." in seller_text
    response = client_for(buyer).post(url + "messages/", {"body": "Yes, attached."}, follow=True)
    assert "your answer went to our staff" in visible_text(response)
    dispute.refresh_from_db()
    assert dispute.state == DisputeState.UNDER_REVIEW


def test_buyer_withdraws_the_dispute(rejected_case, buyer):
    dispute = open_dispute(rejected_case, buyer)
    url = f"/disputes/{dispute.public_id}/"
    assert "Withdraw the dispute…" in visible_text(client_for(buyer).get(url))
    response = client_for(buyer).post(url + "withdraw/", follow=True)
    text = visible_text(response)
    assert "Dispute withdrawn." in text and "The buyer withdrew this dispute" in text


def test_decided_dispute_shows_the_outcome_and_rationale(rejected_case, buyer, seller, staff):
    dispute = open_dispute(rejected_case, buyer)
    dispute_services.dispute_add_statement(dispute=dispute, seller=seller, body="Fine on dispatch.")
    dispute_services.dispute_decide(
        dispute=dispute,
        staff=staff,
        outcome="buyer",
        amount="40.00",
        rationale="The photos show transit damage.",
    )
    text = visible_text(client_for(seller).get(f"/disputes/{dispute.public_id}/"))
    assert "Decided for the buyer: 40.00 USD" in text
    assert "The photos show transit damage." in text


# --- the seller dashboard ---------------------------------------------------------------------


def test_dashboard_lists_what_needs_the_seller_by_deadline_with_counts(buyer, seller):
    first = file_case(delivered_order(buyer, seller), buyer, amount="11.00")
    second = file_case(delivered_order(buyer, seller), buyer, amount="22.00")
    RefundCase.objects.filter(pk=second.pk).update(
        respond_by=first.respond_by - timezone.timedelta(hours=5)
    )
    returned = file_case(delivered_order(buyer, seller), buyer, return_item=True)
    returned = refund_services.refund_accept(case=returned, actor=seller)
    refund_services.refund_ship_return(
        case=returned, actor=buyer, carrier="DHL", tracking_number="1"
    )
    rejected = file_case(delivered_order(buyer, seller), buyer)
    refund_services.refund_reject(case=rejected, actor=seller, reason="No.")
    rejected.refresh_from_db()
    open_dispute(rejected, buyer)

    text = visible_text(client_for(seller).get("/seller/"))
    assert "2 refund requests to answer" in text
    assert "1 return shipped, awaiting your confirmation" in text
    assert "1 dispute awaiting your statement" in text
    assert text.index("22.00 USD") < text.index("11.00 USD")  # the sooner deadline first
    assert "Give your side in a dispute" in text and "Confirm the returned item arrived" in text


def test_dashboard_for_an_account_without_a_shop(buyer):
    assert "No shop yet" in visible_text(client_for(buyer).get("/seller/"))


def test_dashboard_costs_the_same_queries_with_5_or_50_cases(buyer, seller, other_buyer):
    client = client_for(seller)

    def add(n: int) -> None:
        for i in range(n):
            who = buyer if i % 2 else other_buyer
            case = file_case(delivered_order(who, seller), who, amount="5.00")
            if i % 5 == 0:
                refund_services.refund_reject(case=case, actor=seller, reason="No.")
                case.refresh_from_db()
                if who == buyer:
                    open_dispute(case, who)

    add(5)
    few = queries_for(client, "/seller/")
    add(45)
    assert queries_for(client, "/seller/") == few
