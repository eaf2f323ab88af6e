"""Hostile uploads through every way in (API and pages, case and dispute) get a clear refusal,
and nothing of them is stored (docs/rules.md, Evidence files): wrong magic bytes, oversize, huge
dimensions, path-traversal names, one file too many, broken images, broken or active PDFs and
polyglots. What is accepted is stored clean: an image is re-encoded, so only its pixels survive
(no EXIF, GPS, comments or appended bytes), upright."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from pypdf import PdfWriter

from refunds.models import Evidence
from refunds.sanitize import evidence_clean
from tests.conftest import api_client_for
from tests.disputes.factories import dispute_for
from tests.portal.conftest import client_for, delivered_order
from tests.portal.helpers import visible_text
from tests.refunds.factories import jpeg_bytes, pdf_bytes, png_bytes, png_claiming


@dataclass(frozen=True)
class Door:
    name: str
    api: bool
    dispute: bool


DOORS = [
    Door("api-case", True, False),
    Door("api-dispute", True, True),
    Door("page-case", False, False),
    Door("page-dispute", False, True),
]


@pytest.fixture
def dispute(buyer, seller):
    return dispute_for(buyer=buyer, seller=seller)


def send(door: Door, dispute: Any, user: Any, upload: SimpleUploadedFile) -> Any:
    case = dispute.case
    if door.api:
        url = (
            reverse("api:dispute-evidence", kwargs={"dispute_id": dispute.public_id})
            if door.dispute
            else reverse("api:refund-evidence", kwargs={"public_id": case.public_id})
        )
        return api_client_for(user).post(url, {"file": upload, "kind": "photo"}, format="multipart")
    client = Client()
    client.force_login(user)
    url = (
        reverse("dispute-evidence", kwargs={"dispute_id": dispute.public_id})
        if door.dispute
        else reverse("case-evidence", kwargs={"case_id": case.public_id})
    )
    return client.post(url, {"file": upload, "kind": "photo"})


def assert_refused(door: Door, response: Any, words: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    if door.api:
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert words in error["message"], error
        assert words in " ".join(error["fields"]["file"])
    else:
        assert words in response.content.decode()


def stored_files(root: Any) -> list[Any]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# The wrong files, and the words the refusal uses.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64
HTML = b"<!doctype html><script>alert(1)</script>"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04" + b"\x00" * 20
ONLY_TYPES = "Only JPEG, PNG, WebP images and PDF documents"

BAD_FILES = {
    "exe-named-png": ("holiday.png", EXE, "image/png", ONLY_TYPES),
    "html-named-pdf": ("receipt.pdf", HTML, "application/pdf", ONLY_TYPES),
    "gif": ("anim.gif", GIF, "image/gif", ONLY_TYPES),
    "png-header-only": ("cut.png", png_bytes()[:40], "image/png", "could not be read"),
    "huge-dimensions": (
        "bomb.png",
        png_claiming(100_000, 100_000),
        "image/png",
        "The image is too large",
    ),
    "empty": ("empty.png", b"", "image/png", "empty"),
}


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_a_wrong_file_is_refused_clearly_and_not_stored(door, bad, buyer, dispute, private_storage):
    name, content, claimed, words = BAD_FILES[bad]
    response = send(door, dispute, buyer, SimpleUploadedFile(name, content, claimed))
    if bad == "empty" and not door.api:
        # the page's form refuses an empty file before the service does
        assert response.status_code == 400
    else:
        assert_refused(door, response, words)
    assert not Evidence.objects.exists()
    assert not stored_files(private_storage)


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_file_one_byte_over_ten_megabytes_is_refused(
    door, buyer, dispute, private_storage, settings
):
    assert settings.EVIDENCE_MAX_BYTES == 10 * 1024 * 1024
    big = png_bytes() + b"\x00" * (settings.EVIDENCE_MAX_BYTES + 1 - len(png_bytes()))
    response = send(door, dispute, buyer, SimpleUploadedFile("big.png", big, "image/png"))
    assert_refused(door, response, "too large")
    assert not Evidence.objects.exists()
    assert not stored_files(private_storage)


TRAVERSALS = [
    "../../../../etc/passwd.png",
    "..\\..\\windows\\win.ini.png",
    "/etc/cron.d/evil.png",
    "....//....//x.png",
    "%2e%2e%2fescape.png",
]


@pytest.mark.parametrize("door", [DOORS[0], DOORS[2]], ids=lambda d: d.name)
@pytest.mark.parametrize("name", TRAVERSALS)
def test_a_path_traversal_name_is_only_a_display_name(door, name, buyer, dispute, private_storage):
    response = send(door, dispute, buyer, SimpleUploadedFile(name, png_bytes(), "image/png"))
    assert response.status_code in {201, 302}, response.content[:300]
    evidence = Evidence.objects.get()
    # stored under a random name inside the private root; the given name is data only
    path = private_storage.joinpath(evidence.file.name).resolve()
    assert path.is_file() and private_storage.resolve() in path.parents
    assert "/" not in evidence.original_name and "\\" not in evidence.original_name
    assert ".." not in evidence.original_name.replace("....", "")
    assert [p.resolve() for p in stored_files(private_storage)] == [path]


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_the_eleventh_file_is_refused_before_it_is_decoded(
    door, buyer, dispute, private_storage, settings, monkeypatch
):
    for i in range(settings.EVIDENCE_MAX_FILES):
        ok = send(door, dispute, buyer, SimpleUploadedFile(f"p{i}.png", png_bytes(), "image/png"))
        assert ok.status_code in {201, 302}, ok.content[:300]
    # a spy on the cleaner: re-encoding a 40 MP photo only to refuse it would waste seconds
    cleaned: list[object] = []

    def spy(*, upload):
        cleaned.append(upload)
        return evidence_clean(upload=upload)

    monkeypatch.setattr("refunds.sanitize.evidence_clean", spy)
    monkeypatch.setattr("refunds.evidence.evidence_clean", spy)
    response = send(door, dispute, buyer, SimpleUploadedFile("p.png", png_bytes(), "image/png"))
    assert_refused(door, response, "the most it can have")
    assert Evidence.objects.count() == settings.EVIDENCE_MAX_FILES
    assert cleaned == []


# --- images are stored as their pixels only ------------------------------------------------------

RED, BLUE = (220, 20, 20), (20, 20, 220)
ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110
HTML_TAIL = b"<html><script>alert(document.cookie)</script></html>"


def two_colour_image(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Left half red, right half blue: which way is up survives any re-encoding."""
    image = Image.new("RGB", size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def phone_photo() -> bytes:
    """A JPEG as a phone writes it: stored sideways with EXIF orientation 6 (turn 90° clockwise
    to show), the camera's make and model, a GPS position and a comment."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "SpyCam"
    exif[MODEL] = "Tracker 3000"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    buffer = io.BytesIO()
    two_colour_image().save(buffer, "JPEG", exif=exif, comment=b"home address", quality=95)
    return buffer.getvalue()


def stored_evidence(private_storage: Path) -> tuple[Evidence, bytes]:
    evidence = Evidence.objects.get()
    path = Path(evidence.file.path)
    assert private_storage in path.parents
    return evidence, path.read_bytes()


def colour_at(image: Image.Image, xy: tuple[int, int]) -> str:
    r, _, b = image.convert("RGB").getpixel(xy)  # type: ignore[misc]
    return "red" if r > b else "blue"


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_phone_photo_is_stored_upright_without_exif_or_gps(door, buyer, dispute, private_storage):
    # given a photo carrying a GPS position, the camera's name and a comment
    photo = phone_photo()
    with Image.open(io.BytesIO(photo)) as sent:
        assert sent.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert sent.size == (40, 20)

    # when it is attached
    response = send(door, dispute, buyer, SimpleUploadedFile("IMG_1.jpg", photo, "image/jpeg"))
    assert response.status_code in {201, 302}, response.content[:300]

    # then the stored JPEG has the pixels only, turned the way the camera said
    evidence, content = stored_evidence(private_storage)
    assert (evidence.content_type, evidence.size) == ("image/jpeg", len(content))
    for secret in (b"Exif", b"SpyCam", b"Tracker", b"home address"):
        assert secret not in content
    with Image.open(io.BytesIO(content)) as kept:
        assert kept.format == "JPEG"
        assert not kept.getexif()
        assert not {"exif", "comment", "icc_profile", "xmp"} & set(kept.info)
        assert kept.size == (20, 40)  # upright: the left half (red) is now on top
        assert colour_at(kept, (10, 5)) == "red"
        assert colour_at(kept, (10, 35)) == "blue"


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
def test_a_png_with_html_appended_is_stored_without_it(door, buyer, dispute, private_storage):
    # given a real PNG with a page and a script after its end, and text chunks inside
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(2)</script>")
    buffer = io.BytesIO()
    two_colour_image().save(buffer, "PNG", pnginfo=info)
    polyglot = buffer.getvalue() + HTML_TAIL

    # when it is attached
    response = send(door, dispute, buyer, SimpleUploadedFile("a.png", polyglot, "image/png"))
    assert response.status_code in {201, 302}, response.content[:300]

    # then the stored file is the same picture, and nothing else
    evidence, content = stored_evidence(private_storage)
    assert evidence.size == len(content)
    assert b"<script" not in content and b"<html" not in content
    assert content.endswith(b"IEND\xaeB`\x82")
    with Image.open(io.BytesIO(content)) as kept:
        assert kept.format == "PNG" and "Comment" not in kept.info
        assert kept.convert("RGB").tobytes() == two_colour_image().tobytes()  # lossless


def test_a_jpeg_with_trailing_bytes_is_stored_without_them(buyer, dispute, private_storage):
    # given a JPEG with a ZIP archive after its end marker
    jpeg = jpeg_bytes() + b"PK\x03\x04" + b"\x00" * 26 + b"payload.exe"

    send(DOORS[0], dispute, buyer, SimpleUploadedFile("a.jpg", jpeg, "image/jpeg"))

    _, content = stored_evidence(private_storage)
    assert b"PK\x03\x04" not in content and b"payload" not in content
    assert content.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(content)) as kept:
        kept.load()
        assert kept.size == (8, 6)


def test_a_colour_profile_is_applied_not_kept(buyer, dispute, private_storage):
    # given a JPEG with an embedded colour profile (which can carry any text)
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    two_colour_image().save(buffer, "JPEG", icc_profile=profile)

    send(DOORS[0], dispute, buyer, SimpleUploadedFile("a.jpg", buffer.getvalue(), "image/jpeg"))

    _, content = stored_evidence(private_storage)
    with Image.open(io.BytesIO(content)) as kept:
        assert "icc_profile" not in kept.info
        assert colour_at(kept, (5, 5)) == "red"


def test_a_lossless_webp_stays_lossless(buyer, dispute, private_storage):
    buffer = io.BytesIO()
    two_colour_image().save(buffer, "WEBP", lossless=True, exif=Image.Exif().tobytes())

    send(DOORS[0], dispute, buyer, SimpleUploadedFile("a.webp", buffer.getvalue(), "image/webp"))

    _, content = stored_evidence(private_storage)
    with Image.open(io.BytesIO(content)) as kept:
        assert kept.format == "WEBP"
        assert kept.convert("RGB").tobytes() == two_colour_image().tobytes()


def test_a_palette_png_keeps_its_transparency(buyer, dispute, private_storage):
    image = two_colour_image().convert("P")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)

    send(DOORS[0], dispute, buyer, SimpleUploadedFile("a.png", buffer.getvalue(), "image/png"))

    _, content = stored_evidence(private_storage)
    with Image.open(io.BytesIO(content)) as kept:
        assert kept.mode == "P" and kept.info.get("transparency") == 0


# --- broken images, broken or active PDFs, polyglots: refused, nothing written ------------------


def animated(fmt: str) -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)]
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="", owner_password="owner")  # opens without a password
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def with_xref_broken(pdf: bytes) -> bytes:
    at = pdf.index(b"xref\n0")
    return pdf[:at] + b"garbage!!" + pdf[at + 9 :]


JS_ACTION = b"<< /Type /Action /S /JavaScript /JS (app.alert(1)) >>"
UNREADABLE_IMAGE = "The image could not be read"
UNREADABLE_PDF = "The PDF could not be read"
ACTIVE = "cannot be attached; print it to a new PDF"

HOSTILE_FILES = {
    "truncated-jpeg": ("a.jpg", phone_photo()[:-300], UNREADABLE_IMAGE),
    "truncated-png": ("a.png", png_bytes((64, 64))[:-30], UNREADABLE_IMAGE),
    "png-bad-checksum": ("a.png", png_bytes()[:-5] + b"\x00" + png_bytes()[-4:], UNREADABLE_IMAGE),
    "animated-png": ("a.png", animated("PNG"), ONLY_TYPES),  # APNG is its own type
    "animated-webp": ("a.webp", animated("WEBP"), "Animated images cannot be attached"),
    "truncated-pdf": ("a.pdf", pdf_bytes()[:200], UNREADABLE_PDF),
    "pdf-xref-broken": ("a.pdf", with_xref_broken(pdf_bytes()), UNREADABLE_PDF),
    "pdf-root-not-a-catalog": (
        "a.pdf",
        pdf_bytes().replace(b"/Type /Catalog", b"/Tyqe /Catalog"),
        UNREADABLE_PDF,
    ),
    "pdf-without-pages": (
        "a.pdf",
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
        UNREADABLE_PDF,
    ),
    "pdf-encrypted": ("a.pdf", encrypted_pdf(), "Encrypted or password-protected PDFs"),
    "pdf-openaction-js": ("a.pdf", pdf_bytes(b"/OpenAction 4 0 R", JS_ACTION), ACTIVE),
    "pdf-names-js": (
        "a.pdf",
        pdf_bytes(b"/Names << /JavaScript 4 0 R >>", b"<< /Names [(x) 5 0 R] >>", JS_ACTION),
        ACTIVE,
    ),
    # the same script with its names spelt in #xx escapes, as a viewer reads them
    "pdf-escaped-js": ("a.pdf", pdf_bytes(b"/OpenAction << /S /J#61vaScript /#4AS (1) >>"), ACTIVE),
    "pdf-page-opens-js": (
        "a.pdf",
        pdf_bytes(page=b"/AA << /O << /S /JavaScript /JS (app.alert(1)) >> >>"),
        ACTIVE,
    ),
    "pdf-launch": ("a.pdf", pdf_bytes(b"/OpenAction << /S /Launch /F (calc.exe) >>"), ACTIVE),
    "pdf-embedded-file": (
        "a.pdf",
        pdf_bytes(
            b"/Names << /EmbeddedFiles << /Names [(a.exe) 4 0 R] >> >>",
            b"<< /Type /Filespec /F (a.exe) /EF << /F 5 0 R >> >>",
            b"<< /Type /EmbeddedFile /Length 2 >>\nstream\nMZ\nendstream",
        ),
        ACTIVE,
    ),
    "pdf-zip-polyglot": (
        "a.pdf",
        pdf_bytes() + b"PK\x03\x04" + b"\x00" * 26,
        "The PDF has other data after its end",
    ),
    "pdf-html-polyglot": ("a.pdf", pdf_bytes() + HTML_TAIL, "The PDF has other data after its end"),
}


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
@pytest.mark.parametrize("bad", sorted(HOSTILE_FILES))
def test_a_broken_or_active_file_is_refused_and_nothing_is_written(
    door, bad, buyer, dispute, private_storage
):
    name, content, words = HOSTILE_FILES[bad]
    response = send(door, dispute, buyer, SimpleUploadedFile(name, content, "image/png"))
    assert_refused(door, response, words)
    assert not Evidence.objects.exists()
    assert not stored_files(private_storage)


@pytest.mark.parametrize(
    "pdf",
    [
        pdf_bytes(),
        pdf_bytes(b"/OpenAction [3 0 R /Fit]"),  # opening at a page is no action
        pdf_bytes(page=b"/Annots [<< /Subtype /Link /Rect [0 0 9 9] /A << /S /URI /URI (x) >> >>]"),
        pdf_bytes() + b"\r\n\x00 ",  # white space after the end is still the end
    ],
    ids=["plain", "opens-at-a-page", "web-link", "trailing-white-space"],
)
def test_a_valid_pdf_is_stored_as_it_came(pdf, buyer, dispute, private_storage):
    response = send(DOORS[0], dispute, buyer, SimpleUploadedFile("r.pdf", pdf, "application/pdf"))

    assert response.status_code == 201, response.json()
    evidence, content = stored_evidence(private_storage)
    assert content == pdf
    assert (evidence.content_type, evidence.size) == ("application/pdf", len(pdf))


def test_step_three_of_a_request_keeps_only_clean_files(buyer, seller, settings):
    # given a buyer at step 3 of a refund request
    order = delivered_order(buyer, seller)
    client = client_for(buyer)
    client.post(f"/orders/{order.number}/refund/", {"reason": "damaged"})
    drafts = Path(settings.PRIVATE_STORAGE_ROOT) / "drafts"

    # when they choose a PDF with a script and a phone photo
    response = client.post(
        f"/orders/{order.number}/refund/details/",
        {
            "amount": "10.00",
            "return_item": "no",
            "evidence": [
                SimpleUploadedFile("r.pdf", pdf_bytes(b"/OpenAction 4 0 R", JS_ACTION)),
                SimpleUploadedFile("IMG_1.jpg", phone_photo()),
            ],
        },
    )

    # then the PDF is refused on the page and never written; the photo waits without its EXIF
    assert response.status_code == 400
    assert "“r.pdf” was not added: PDFs with a script cannot be attached" in visible_text(response)
    [waiting] = list(drafts.iterdir())
    assert b"SpyCam" not in waiting.read_bytes()
