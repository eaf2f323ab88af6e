"""One timeline and one message thread for the case page and the dispute page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from disputes import services as dispute_services
from tests.disputes.factories import decided, dispute_for
from tests.portal.conftest import client_for
from tests.portal.helpers import queries_for

pytestmark = pytest.mark.django_db


def timeline(response: Any) -> list[str]:
    """What each line of the page's "What happened" list says happened, in order."""
    body = response.content.decode()
    (listing,) = re.findall(r'<ol class="timeline">(.*?)</ol>', body, flags=re.S)
    return re.findall(r"<strong>(.*?)</strong>", listing)


def test_case_and_dispute_pages_tell_the_same_story_once(buyer, seller, staff):
    # given a refund request that was rejected, disputed and decided by staff
    dispute = decided(dispute_for(buyer=buyer, seller=seller), staff=staff, amount="59.90")
    client = client_for(buyer)

    # when the buyer reads the case page and the dispute page
    on_case = timeline(client.get(f"/refunds/{dispute.case.public_id}/"))
    on_dispute = timeline(client.get(f"/disputes/{dispute.public_id}/"))

    # then both show the same lines, each step once (the case's own escalated / resolved
    # events say what the dispute's events say in more detail)
    assert on_case == on_dispute
    assert on_case[:2] == ["Refund requested", "The seller rejected the request"]
    for line in ("Dispute opened", "The seller added a statement", "Staff decided the dispute"):
        assert on_case.count(line) == 1, on_case
    assert "Dispute ended" not in on_case


def test_dispute_messages_name_each_author_as_the_case_thread_does(buyer, seller, staff):
    # given a dispute on which the buyer, the seller and staff wrote
    dispute = dispute_for(buyer=buyer, seller=seller)
    for author, body in ((buyer, "It was cracked."), (seller, "It was not."), (staff, "Photos?")):
        dispute_services.dispute_post_message(dispute=dispute, author=author, body=body)

    # when the seller reads the dispute
    body = client_for(seller).get(f"/disputes/{dispute.public_id}/").content.decode()

    # then each message says who wrote it, staff without their name
    listing = body[body.index('aria-label="Messages on the dispute"') :]
    authors = re.findall(r'<span class="msg__meta">(.*?) ·', listing)[:3]
    assert authors == [f"{buyer.display_name} (buyer)", "You", "RefundPortal staff"]


def test_dispute_page_costs_the_same_queries_with_a_short_or_long_story(buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    client = client_for(buyer)
    url = f"/disputes/{dispute.public_id}/"
    few = queries_for(client, url)
    for n in range(10):
        dispute_services.dispute_post_message(dispute=dispute, author=staff, body=f"Note {n}")
    decided(dispute, staff=staff, amount="59.90")
    assert queries_for(client, url) == few
