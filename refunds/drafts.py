"""Refund drafts: what a buyer chose in steps 2 and 3 of the refund request, until step 4 files it.

The choices live in the buyer's session, one draft per order, and expire with it. The files
chosen in step 3 wait in a private folder (outside the static root) under a random token until
step 4 attaches them to the new case. An abandoned draft's files are deleted by the periodic
`refund_drafts_cleanup` task, never inside a request. A draft is checked with
`refund_request_validate`, the rules `refund_request` itself applies, so step 3 neither writes
nor locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.files import File
from django.utils import timezone

from kernel.errors import DomainError
from orders.models import Order, User

from .evidence import evidence_add
from .models import RefundCase
from .sanitize import CleanFile, evidence_clean
from .services import ItemRequest, refund_request, refund_request_validate

# How long a chosen file waits for its request to be filed.
DRAFT_FILE_MAX_AGE = timedelta(days=1)


class DraftFile(TypedDict):
    token: str  # our own uuid4 hex: the file's name in the drafts folder
    name: str  # as uploaded, shown back to the buyer
    size: int


@dataclass
class RefundDraft:
    reason: str = ""
    amount: str = ""
    return_item: bool = False
    description: str = ""
    items: dict[str, int] = field(default_factory=dict)  # order item id -> quantity
    files: list[DraftFile] = field(default_factory=list)


def _key(order: Order) -> str:
    return f"refund_draft:{order.number}"


def _root() -> Path:
    return Path(settings.PRIVATE_STORAGE_ROOT) / "drafts"


def _path(token: str) -> Path:
    # Tokens are our own uuid4 hex; anything else never becomes a path.
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError(f"Not a draft file token: {token!r}")
    return _root() / token


def refund_draft_get(*, session: SessionBase, order: Order) -> RefundDraft:
    """The buyer's draft for this order; an empty one if there is none yet."""
    stored = session.get(_key(order)) or {}
    known = {f.name for f in fields(RefundDraft)}
    return RefundDraft(**{k: v for k, v in stored.items() if k in known})


def refund_draft_save(*, session: SessionBase, order: Order, draft: RefundDraft) -> None:
    """Create or replace the draft of this order."""
    session[_key(order)] = asdict(draft)


def refund_draft_discard(*, session: SessionBase, order: Order) -> None:
    """Forget the draft and delete the files it still holds."""
    draft = refund_draft_get(session=session, order=order)
    refund_draft_remove_files(draft=draft, tokens={f["token"] for f in draft.files})
    session.pop(_key(order), None)


def refund_draft_add_files(*, draft: RefundDraft, uploads: Iterable[Any]) -> list[str]:
    """Keep the uploads the draft has room for, as the clean copies `evidence_clean` makes
    (so the buyer hears at once why a file is refused, and nothing else waits on disk);
    returns why each other one was not kept."""
    max_files = settings.EVIDENCE_MAX_FILES
    refused: list[str] = []
    for upload in uploads:
        if len(draft.files) >= max_files:
            refused.append(f"“{upload.name}” was not added: at most {max_files} files.")
            continue
        try:
            clean = evidence_clean(upload=upload)
        except DomainError as exc:
            refused.append(f"“{upload.name}” was not added: {exc.message}")
            continue
        draft.files.append(_stash(clean))
    return refused


def _stash(clean: CleanFile) -> DraftFile:
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (root / token).write_bytes(clean.content)
    return {"token": token, "name": clean.name[:200], "size": clean.size}


def refund_draft_remove_files(*, draft: RefundDraft, tokens: set[str]) -> None:
    for item in draft.files:
        if item["token"] in tokens:
            _path(item["token"]).unlink(missing_ok=True)
    draft.files = [f for f in draft.files if f["token"] not in tokens]


def _request(draft: RefundDraft) -> dict[str, Any]:
    return {
        "reason": draft.reason,
        "amount": draft.amount or None,
        "items": [
            ItemRequest(order_item_id=int(k), quantity=int(v)) for k, v in draft.items.items()
        ],
    }


def refund_draft_validate(*, draft: RefundDraft, order: Order, buyer: User, now: datetime) -> None:
    """Raise the `DomainError` filing this draft would raise now; nothing is written or locked."""
    refund_request_validate(order=order, buyer=buyer, now=now, **_request(draft))


def refund_draft_submit(
    *, session: SessionBase, order: Order, buyer: User, now: datetime
) -> tuple[RefundCase, list[tuple[str, str]]]:
    """File the draft, attach its files to the new case, and forget it. A refused file does not
    undo the case: returns the case and (file name, why) for each file not attached."""
    draft = refund_draft_get(session=session, order=order)
    case = refund_request(
        order=order,
        buyer=buyer,
        description=draft.description,
        return_item=draft.return_item,
        now=now,
        **_request(draft),
    )
    refused: list[tuple[str, str]] = []
    for item in draft.files:
        path = _path(item["token"])
        try:
            with open(path, "rb") as handle:
                evidence_add(
                    case=case, actor=buyer, upload=File(handle, name=item["name"]), kind="photo"
                )
        except FileNotFoundError:
            refused.append((item["name"], "the upload expired."))
        except DomainError as exc:
            refused.append((item["name"], exc.message))
    refund_draft_discard(session=session, order=order)
    return case, refused


def refund_drafts_cleanup(*, now: datetime | None = None) -> int:
    """Delete draft files older than `DRAFT_FILE_MAX_AGE` (their request was never filed).
    Returns how many went; safe to run twice or concurrently."""
    root = _root()
    if not root.is_dir():
        return 0
    cutoff = ((now or timezone.now()) - DRAFT_FILE_MAX_AGE).timestamp()
    removed = 0
    for path in root.iterdir():
        try:
            if path.stat().st_mtime >= cutoff:
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue  # another run took it first
    return removed
