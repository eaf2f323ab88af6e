"""Dispute evidence through the API: the refunds evidence rules, the dispute's own allowance."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from refunds.models import Evidence
from tests.disputes.factories import decided, dispute_for, pdf_upload, png_upload


def url(dispute) -> str:
    return f"/api/v1/disputes/{dispute.public_id}/evidence/"


def test_buyer_attaches_a_photo(api, buyer, seller):
    # given an open dispute
    dispute = dispute_for(buyer=buyer, seller=seller)

    # when the buyer uploads a photo
    response = api(buyer).post(
        url(dispute), {"file": png_upload("crack.png"), "kind": "photo"}, format="multipart"
    )

    # then it is stored for the dispute and listed on it, served through the checked view
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["kind"], body["content_type"], body["uploaded_by"]) == (
        "crack.png",
        "photo",
        "image/png",
        "buyer",
    )
    assert body["url"].startswith("http://testserver/files/evidence/")
    evidence = Evidence.objects.get()
    assert evidence.for_dispute and evidence.case_id == dispute.case_id
    detail = api(seller).get(f"/api/v1/disputes/{dispute.public_id}/").json()
    assert [e["id"] for e in detail["evidence"]] == [body["id"]]


def test_seller_and_staff_attach_too(api, buyer, seller, staff):
    dispute = dispute_for(buyer=buyer, seller=seller)
    assert (
        api(seller).post(url(dispute), {"file": pdf_upload()}, format="multipart").status_code
        == 201
    )
    assert (
        api(staff).post(url(dispute), {"file": pdf_upload()}, format="multipart").status_code == 201
    )
    listed = api(buyer).get(url(dispute)).json()["results"]
    assert [e["uploaded_by"] for e in listed] == ["seller", "staff"]


def test_content_not_name_decides(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    fake = SimpleUploadedFile("photo.png", b"MZ\x90\x00 not an image", content_type="image/png")
    response = api(buyer).post(url(dispute), {"file": fake}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not Evidence.objects.exists()


def test_ten_files_per_dispute(api, buyer, seller):
    dispute = dispute_for(buyer=buyer, seller=seller)
    client = api(buyer)
    for i in range(10):
        assert (
            client.post(
                url(dispute), {"file": png_upload(f"{i}.png")}, format="multipart"
            ).status_code
            == 201
        )
    response = client.post(url(dispute), {"file": png_upload("11.png")}, format="multipart")
    assert response.status_code == 400
    assert Evidence.objects.filter(for_dispute=True).count() == 10


def test_strangers_do_not_find_the_dispute(api, buyer, seller, other_buyer):
    dispute = dispute_for(buyer=buyer, seller=seller)
    response = api(other_buyer).post(url(dispute), {"file": png_upload()}, format="multipart")
    assert response.status_code == 404


def test_no_evidence_after_the_decision(api, buyer, seller, staff):
    dispute = decided(dispute_for(buyer=buyer, seller=seller), staff=staff, outcome="seller")
    response = api(buyer).post(url(dispute), {"file": png_upload()}, format="multipart")
    assert response.status_code == 409
