"""Hostile uploads through every way in (API and pages, case and dispute) get a clear refusal,
and nothing of them is stored (docs/rules.md, Evidence files): wrong magic bytes, oversize, huge
dimensions, path-traversal names, one file too many."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from refunds.models import Evidence
from tests.conftest import api_client_for
from tests.disputes.factories import dispute_for
from tests.refunds.factories import png_bytes, png_claiming


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
def test_the_eleventh_file_is_refused(door, buyer, dispute, private_storage, settings):
    for i in range(settings.EVIDENCE_MAX_FILES):
        ok = send(door, dispute, buyer, SimpleUploadedFile(f"p{i}.png", png_bytes(), "image/png"))
        assert ok.status_code in {201, 302}, ok.content[:300]
    response = send(door, dispute, buyer, SimpleUploadedFile("p.png", png_bytes(), "image/png"))
    assert_refused(door, response, "the most it can have")
    assert Evidence.objects.count() == settings.EVIDENCE_MAX_FILES
