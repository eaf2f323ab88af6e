"""Evidence files (docs/rules.md, Evidence files): judged by content, capped, stored under random
names, served only to the buyer, the seller and staff of the case."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from kernel.errors import NotAllowed, ValidationFailed
from orders.models import Event
from refunds.evidence import evidence_add, sanitize_file_name
from refunds.models import Evidence
from tests.refunds.factories import (
    file_refund,
    jpeg_bytes,
    minimal_pdf_bytes,
    noisy_png_bytes,
    pillow_pdf_bytes,
    png_bytes,
    png_claiming,
    upload,
    webp_bytes,
)


@pytest.fixture
def case(order):
    return file_refund(order, amount="20.00", return_item=True)


def evidence_url(case):
    return f"/api/v1/refunds/{case.public_id}/evidence/"


def refused(exc_info, fragment):
    error = exc_info.value
    assert error.code == "validation_error"
    assert fragment in error.message
    assert error.fields == {"file": [error.message]}
    return True


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "mime"),
    [
        ("photo.png", png_bytes(), "image/png"),
        ("photo.jpg", jpeg_bytes(), "image/jpeg"),
        ("photo.webp", webp_bytes(), "image/webp"),
        ("receipt.pdf", minimal_pdf_bytes(), "application/pdf"),
        ("scan.pdf", pillow_pdf_bytes(), "application/pdf"),
        # the name and the claimed type do not matter, the content does
        ("IMG_0001.HEIC", png_bytes(), "image/png"),
    ],
)
def test_accepted_types_are_judged_by_content(buyer, case, private_storage, name, content, mime):
    # given a real file of an accepted type
    # when the buyer attaches it (the client claims a wrong content type)
    evidence = evidence_add(
        case=case, actor=buyer, upload=upload(name, content, "application/x-whatever")
    )

    # then it is stored under a random name in the private root, with the sniffed type
    assert evidence.content_type == mime
    assert evidence.original_name == name
    stored = private_storage / evidence.file.name
    assert evidence.size == stored.stat().st_size
    if mime == "application/pdf":
        assert stored.read_bytes() == content  # a valid PDF is kept as it came
    else:  # an image is stored re-encoded: the same picture, in the same format
        with Image.open(stored) as kept, Image.open(io.BytesIO(content)) as sent:
            assert (kept.format, kept.size) == (sent.format, sent.size)
    assert evidence.file.name.startswith(f"evidence/{case.public_id}/")
    assert name not in evidence.file.name


def test_adding_evidence_writes_an_audit_event_for_the_other_party(buyer, seller, case):
    evidence = evidence_add(
        case=case, actor=buyer, upload=upload("a.png", png_bytes()), kind="photo"
    )

    event = Event.objects.get(case_id=case.public_id, kind="evidence.added")
    assert event.actor == buyer
    assert event.payload["notify"] == {"seller": seller.pk}
    assert event.payload["evidence_id"] == str(evidence.public_id)
    assert event.payload["evidence_kind"] == "photo"

    evidence_add(case=case, actor=seller, upload=upload("b.png", png_bytes()))
    last = Event.objects.filter(kind="evidence.added").last()
    assert last.payload["notify"] == {"buyer": buyer.pk}


def test_path_traversal_name_is_kept_only_as_a_harmless_name(buyer, case, private_storage):
    evidence = evidence_add(
        case=case, actor=buyer, upload=upload("../../etc/passwd.png", png_bytes())
    )

    assert evidence.original_name == "passwd.png"
    assert ".." not in evidence.file.name
    assert (private_storage / evidence.file.name).resolve().is_relative_to(private_storage)
    assert not (private_storage.parent / "etc").exists()


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("..\\..\\windows\\win.ini.pdf", "win.ini.pdf"),
        ("/abs/path/receipt.pdf", "receipt.pdf"),
        ("re\u202eceipt\x00.pdf", "receipt.pdf"),
        ("", "file"),
        ("..", "file"),
        ("a" * 300 + ".png", "a" * 116 + ".png"),
    ],
)
def test_file_names_are_sanitised(raw, clean):
    assert sanitize_file_name(raw) == clean


# --- refused ----------------------------------------------------------------------------------


def test_an_exe_renamed_png_is_refused(buyer, case):
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("invoice.png", exe, "image/png"))
    assert refused(exc_info, "Only JPEG, PNG, WebP images and PDF documents")
    assert not Evidence.objects.exists()


def test_a_text_file_named_pdf_is_refused(buyer, case):
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(
            case=case,
            actor=buyer,
            upload=upload("receipt.pdf", b"I promise I paid.\n", "application/pdf"),
        )
    assert refused(exc_info, "Only JPEG, PNG, WebP images and PDF documents")


def test_a_gif_is_refused(buyer, case):
    from tests.refunds.factories import image_bytes

    with pytest.raises(ValidationFailed):
        evidence_add(case=case, actor=buyer, upload=upload("a.gif", image_bytes("GIF")))


def test_an_empty_file_is_refused(buyer, case):
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("a.png", b""))
    assert refused(exc_info, "empty")


def test_a_png_that_is_only_a_header_is_refused(buyer, case):
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("a.png", png_bytes()[:40]))
    assert refused(exc_info, "could not be read")


def test_an_oversize_file_is_refused(buyer, case, settings):
    settings.EVIDENCE_MAX_BYTES = 64 * 1024
    content = noisy_png_bytes((200, 200))
    assert len(content) > 64 * 1024

    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("big.png", content))
    assert refused(exc_info, "too large")
    assert not Evidence.objects.exists()


def test_the_eleventh_file_is_refused(buyer, case):
    for index in range(10):
        evidence_add(case=case, actor=buyer, upload=upload(f"{index}.png", png_bytes()))

    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("11.png", png_bytes()))
    assert refused(exc_info, "already has 10 files")
    assert Evidence.objects.filter(case=case).count() == 10


def test_the_dispute_has_its_own_ten_files(buyer, case, settings):
    settings.EVIDENCE_MAX_FILES = 2
    for index in range(2):
        evidence_add(case=case, actor=buyer, upload=upload(f"{index}.png", png_bytes()))

    evidence_add(case=case, actor=buyer, upload=upload("d.png", png_bytes()), for_dispute=True)
    evidence_add(case=case, actor=buyer, upload=upload("e.png", png_bytes()), for_dispute=True)
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("f.png", png_bytes()), for_dispute=True)
    assert refused(exc_info, "This dispute already has 2 files")


@pytest.mark.parametrize(("width", "height"), [(8000, 6000), (50000, 50000)])
def test_a_huge_dimension_png_is_refused_from_its_header(buyer, case, width, height):
    # given a tiny file claiming 48 million (and then 2.5 billion) pixels
    bomb = png_claiming(width, height)
    assert len(bomb) < 2000

    # when it is attached
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("bomb.png", bomb))

    # then it is refused without being decoded
    assert refused(exc_info, "too large")


def test_an_unknown_kind_is_refused(buyer, case):
    with pytest.raises(ValidationFailed) as exc_info:
        evidence_add(case=case, actor=buyer, upload=upload("a.png", png_bytes()), kind="selfie")
    assert "kind" in exc_info.value.fields


def test_only_the_parties_and_staff_add_files(other_buyer, staff, case):
    with pytest.raises(NotAllowed):
        evidence_add(case=case, actor=other_buyer, upload=upload("a.png", png_bytes()))

    evidence = evidence_add(case=case, actor=staff, upload=upload("a.png", png_bytes()))
    event = Event.objects.get(kind="evidence.added")
    assert evidence.uploaded_by == staff
    assert set(event.payload["notify"]) == {"buyer", "seller"}


# --- API ------------------------------------------------------------------------------------


def test_api_upload_and_list(api, buyer, seller, case):
    # when the buyer uploads a photo through the API
    response = api(buyer).post(
        evidence_url(case),
        {"file": upload("dent.jpg", jpeg_bytes()), "kind": "photo"},
        format="multipart",
    )

    # then it is listed for the seller with a permission-checked link
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["content_type"] == "image/jpeg"
    assert created["name"] == "dent.jpg"
    assert created["uploaded_by"] == {"name": "Bea Buyer", "role": "buyer"}
    assert created["url"].endswith(f"/files/evidence/{created['id']}/")
    listed = api(seller).get(evidence_url(case)).json()
    assert [e["id"] for e in listed["results"]] == [created["id"]]


def test_api_refusal_uses_the_error_envelope(api, buyer, case):
    response = api(buyer).post(
        evidence_url(case), {"file": upload("x.png", b"not an image at all")}, format="multipart"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "file" in error["fields"]


def test_api_stranger_gets_404(api, other_buyer, case):
    response = api(other_buyer).post(
        evidence_url(case), {"file": upload("a.png", png_bytes())}, format="multipart"
    )
    assert response.status_code == 404
    assert api(other_buyer).get(evidence_url(case)).status_code == 404


def test_api_upload_without_a_file(api, buyer, case):
    response = api(buyer).post(evidence_url(case), {"kind": "photo"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]


# --- download ---------------------------------------------------------------------------------


def download_url(evidence):
    return f"/files/evidence/{evidence.public_id}/"


@pytest.mark.parametrize("who", ["buyer", "seller", "staff"])
def test_parties_and_staff_download_an_image_inline(client, request, buyer, case, who):
    evidence = evidence_add(case=case, actor=buyer, upload=upload("dent.png", png_bytes()))
    client.force_login(request.getfixturevalue(who))

    response = client.get(download_url(evidence))

    assert response.status_code == 200
    with evidence.file.open("rb") as stored:
        assert b"".join(response.streaming_content) == stored.read()
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_pdf_is_downloaded_as_an_attachment(client, seller, buyer, case):
    content = minimal_pdf_bytes()
    evidence = evidence_add(case=case, actor=buyer, upload=upload("receipt.pdf", content))
    client.force_login(seller)

    response = client.get(download_url(evidence))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="receipt.pdf"'


@pytest.mark.parametrize("who", ["other_buyer", "other_seller"])
def test_another_users_download_is_404(client, request, buyer, case, who):
    evidence = evidence_add(case=case, actor=buyer, upload=upload("a.png", png_bytes()))
    client.force_login(request.getfixturevalue(who))

    response = client.get(download_url(evidence))

    assert response.status_code == 404


def test_anonymous_download_is_not_served(client, buyer, case):
    evidence = evidence_add(case=case, actor=buyer, upload=upload("a.png", png_bytes()))

    response = client.get(download_url(evidence))

    assert response.status_code in (302, 404)
    assert not getattr(response, "streaming", False)


def test_download_of_an_unknown_id_is_404(client, buyer):
    client.force_login(buyer)
    assert client.get("/files/evidence/00000000-0000-4000-8000-000000000000/").status_code == 404
    assert client.get("/files/evidence/not-a-uuid/").status_code == 404
