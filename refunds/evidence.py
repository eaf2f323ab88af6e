"""Evidence files (docs/rules.md, Evidence files): the one service that accepts them and the one
view that serves them.

A file is judged by its content, never by its name or the content type the client claims, and
what is stored is the clean copy `refunds.sanitize.evidence_clean` makes of it (images
re-encoded, PDFs checked). It is stored under a random name by the model's private storage
(outside the static root); the uploaded name is kept only as data. It
leaves only through `evidence_download`, which finds it through a selector that takes the user.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch
from django.views.decorators.http import require_safe

from kernel.errors import NotAllowed, ValidationFailed
from orders.models import User
from orders.rules import order_role

from .events import event_evidence_added
from .models import Evidence, RefundCase
from .sanitize import evidence_clean, refusal
from .selectors import evidence_get_for_user
from .services import case_lock

EVIDENCE_KINDS = ("receipt", "shipping", "chat", "photo", "other")
NAME_MAX_LENGTH = 120


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


def evidence_count_refusal(*, case: RefundCase, for_dispute: bool) -> ValidationFailed | None:
    """Why one more file may not be added to the case (or its dispute): its allowance is used."""
    max_files = settings.EVIDENCE_MAX_FILES
    if Evidence.objects.filter(case=case, for_dispute=for_dispute).count() < max_files:
        return None
    where = "dispute" if for_dispute else "case"
    return refusal(f"This {where} already has {max_files} files, the most it can have.")


def evidence_add(
    *,
    case: RefundCase,
    actor: User,
    upload: Any,
    for_dispute: bool = False,
    kind: str = "",
) -> Evidence:
    """Attach a file to a case (or to the dispute on it) after checking what it really is.

    `upload` is what the client sent, or the `CleanFile` a caller already made of it with
    `evidence_clean` (so a caller holding no lock yet does the slow part first).
    """
    role = order_role(order=case.order, user=actor)  # who is buyer and seller never changes
    if role not in ("buyer", "seller", "staff"):
        raise NotAllowed("Only the buyer, the seller and staff can add files to this case.")
    kind = (kind or "").strip().lower()
    if kind and kind not in EVIDENCE_KINDS:
        raise ValidationFailed(
            f"Choose a kind of file: {', '.join(EVIDENCE_KINDS)}.",
            fields={"kind": [f"One of {', '.join(EVIDENCE_KINDS)}."]},
        )
    if upload is None:
        raise refusal("Choose a file to attach.")
    # Asked again under the lock; asked here so an eleventh file is not decoded for nothing.
    if (full := evidence_count_refusal(case=case, for_dispute=for_dispute)) is not None:
        raise full
    # Decoding and re-encoding a large photo takes a while: done before the case is locked,
    # and before anything is written, so a refused file leaves nothing behind.
    clean = evidence_clean(upload=upload)
    with transaction.atomic():
        # The case lock (order first, then case) serialises uploads, so two at once cannot
        # both be the tenth file.
        case = case_lock(case)
        if (full := evidence_count_refusal(case=case, for_dispute=for_dispute)) is not None:
            raise full
        evidence = Evidence(
            case=case,
            for_dispute=for_dispute,
            kind=kind,
            uploaded_by=actor,
            original_name=sanitize_file_name(clean.name),
            content_type=clean.content_type,
            size=clean.size,
        )
        # The storage name comes from `evidence_path` (random); the name given here is ignored.
        evidence.file.save("evidence", ContentFile(clean.content), save=False)
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
