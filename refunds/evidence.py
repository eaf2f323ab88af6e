"""Evidence files (docs/rules.md, Evidence files): the one service that accepts them and the one
view that serves them.

A file is judged by its content (magic bytes through `filetype`, images re-read by Pillow), never
by its name or the content type the client claims. It is stored under a random name by the
model's private storage (outside the static root); the uploaded name is kept only as data. It
leaves only through `evidence_download`, which finds it through a selector that takes the user.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from typing import IO, Any

import filetype
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files import File
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch
from django.views.decorators.http import require_safe
from PIL import Image, UnidentifiedImageError

from kernel.errors import NotAllowed, ValidationFailed
from orders.models import User
from orders.rules import order_role

from .events import event_evidence_added
from .models import Evidence, RefundCase
from .selectors import evidence_get_for_user
from .services import case_lock

# What each accepted type is, as `filetype` names it, and how Pillow names it for images.
ACCEPTED_TYPES: dict[str, str | None] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "application/pdf": None,
}
EVIDENCE_KINDS = ("receipt", "shipping", "chat", "photo", "other")
NAME_MAX_LENGTH = 120
# filetype looks at most at the first 8 KiB (the PDF and WebP signatures are within 16 bytes).
_SNIFF_BYTES = 8192


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={"file": [message]})


def sanitize_file_name(name: str | None) -> str:
    """The uploaded name as harmless display data: basename only, printable, length-capped.

    `../../etc/passwd.png` becomes `passwd.png`; it is never used as a path (storage names are
    random), but it is shown to the other party and sent in Content-Disposition.
    """
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in {"C", "Z"} or ch == " ")
    name = re.sub(r"\s+", " ", name).strip(" .")
    if not name:
        return "file"
    if len(name) > NAME_MAX_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = f"{stem[: NAME_MAX_LENGTH - len(ext) - 1]}.{ext}"
        else:
            name = name[:NAME_MAX_LENGTH]
    return name


def _sniff(upload: IO[bytes]) -> str:
    upload.seek(0)
    head = upload.read(_SNIFF_BYTES)
    upload.seek(0)
    if not head:
        raise _refuse("The file is empty.")
    kind = filetype.guess(head)
    if kind is None or kind.mime not in ACCEPTED_TYPES:
        raise _refuse("Only JPEG, PNG, WebP images and PDF documents can be attached.")
    return str(kind.mime)


def _check_image(upload: IO[bytes], mime: str) -> None:
    """Read the header only (no decoding) to refuse decompression bombs, then verify it."""
    max_pixels = settings.EVIDENCE_MAX_PIXELS
    too_big = _refuse(f"The image is too large: at most {max_pixels:,} pixels.")
    unreadable = _refuse("The image could not be read; attach a JPEG, PNG or WebP file.")
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it; a bomb is an error here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise too_big
                if image.format != ACCEPTED_TYPES[mime]:
                    raise unreadable
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_big from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise unreadable from exc
    finally:
        upload.seek(0)


def _size(upload: Any) -> int:
    size = getattr(upload, "size", None)
    if size is None:
        upload.seek(0, 2)
        size = upload.tell()
        upload.seek(0)
    return int(size)


@transaction.atomic
def evidence_add(
    *, case: RefundCase, actor: User, upload: Any, for_dispute: bool = False, kind: str = ""
) -> Evidence:
    """Attach a file to a case (or to the dispute on it) after checking what it really is."""
    # The case lock (order first, then case) serialises uploads, so two at once cannot both
    # be the tenth file.
    case = case_lock(case)
    role = order_role(order=case.order, user=actor)
    if role not in ("buyer", "seller", "staff"):
        raise NotAllowed("Only the buyer, the seller and staff can add files to this case.")
    kind = (kind or "").strip().lower()
    if kind and kind not in EVIDENCE_KINDS:
        raise ValidationFailed(
            f"Choose a kind of file: {', '.join(EVIDENCE_KINDS)}.",
            fields={"kind": [f"One of {', '.join(EVIDENCE_KINDS)}."]},
        )
    if upload is None:
        raise _refuse("Choose a file to attach.")
    size = _size(upload)
    max_bytes = settings.EVIDENCE_MAX_BYTES
    if size > max_bytes:
        raise _refuse(
            f"The file is too large: at most {max_bytes // (1024 * 1024) or 1} MB "
            f"({max_bytes:,} bytes)."
        )
    max_files = settings.EVIDENCE_MAX_FILES
    where = "dispute" if for_dispute else "case"
    if Evidence.objects.filter(case=case, for_dispute=for_dispute).count() >= max_files:
        raise _refuse(f"This {where} already has {max_files} files, the most it can have.")
    mime = _sniff(upload)
    if ACCEPTED_TYPES[mime] is not None:
        _check_image(upload, mime)

    evidence = Evidence(
        case=case,
        for_dispute=for_dispute,
        kind=kind,
        uploaded_by=actor,
        original_name=sanitize_file_name(getattr(upload, "name", "")),
        content_type=mime,
        size=size,
    )
    # The storage name comes from `evidence_path` (random); the name given here is ignored.
    evidence.file.save("evidence", File(upload), save=False)
    try:
        with transaction.atomic():
            evidence.save()
            event_evidence_added(case=case, evidence=evidence, actor=actor, actor_role=role)
    except Exception:
        evidence.file.delete(save=False)
        raise
    return evidence


# --- serving ---------------------------------------------------------------------------------


@require_safe
def evidence_download(request: HttpRequest, evidence_id: Any) -> HttpResponseBase:
    """Stream a file to the buyer, the seller or staff of its case; 404 to anyone else."""
    if not request.user.is_authenticated:
        try:
            return redirect_to_login(request.get_full_path())
        except NoReverseMatch as exc:  # no login page configured: a stranger all the same
            raise Http404("No such file.") from exc
    evidence = evidence_get_for_user(user=request.user, evidence_id=evidence_id)
    try:
        handle = evidence.file.open("rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("No such file.") from exc
    response = FileResponse(
        handle,
        content_type=evidence.content_type,
        # PDFs are downloaded, never rendered in the portal's origin; images are shown inline.
        as_attachment=not evidence.is_image,
        filename=evidence.original_name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cache-Control"] = "private, no-store"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
