"""What an evidence file really is, and the clean copy of it that is stored (docs/rules.md,
Evidence files).

A file is judged by its content, never by its name or the type the client claims: magic bytes
through `filetype`, then the format's own parser. Images are decoded by Pillow and re-encoded,
so only their pixels survive: EXIF (with any GPS position), XMP, comments, text chunks and
whatever was appended after the image are gone, the EXIF orientation is applied first so photos
stay upright, and a colour profile is applied (converted to sRGB) rather than kept. PDFs are
parsed by pypdf (strictly) and stored as they came only when they open, are not encrypted, carry no
active content (scripts, launch and submit actions, embedded files, XFA forms) and end where
the PDF ends. All of it happens in the request, before anything is written or locked.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import filetype
from django.conf import settings
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject

from kernel.errors import ValidationFailed

# What each accepted type is, as `filetype` names it, and how Pillow names it for images.
ACCEPTED_TYPES: dict[str, str | None] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "application/pdf": None,
}
# filetype looks at most at the first 8 KiB (the PDF and WebP signatures are within 16 bytes).
_SNIFF_BYTES = 8192
# What may follow a PDF's last `%%EOF`: PDF white space (ISO 32000-1, 7.2.2), nothing else.
_PDF_WHITESPACE = b"\x00\t\n\x0c\r "

# Active content a reviewer would not open: keys whose presence alone refuses the file…
_PDF_ACTIVE_KEYS = {
    "/JS": "a script",
    "/JavaScript": "a script",
    "/EmbeddedFiles": "embedded files",
    "/EF": "embedded files",
    "/XFA": "an XFA form",
    "/RichMediaContent": "embedded media",
}
# …action types (`/S`) that run something or reach outside the document (links to web pages,
# `/URI`, and moves within it, `/GoTo`, are fine)…
_PDF_ACTIVE_ACTIONS = {
    "/JavaScript": "a script",
    "/Launch": "an action that launches a program",
    "/SubmitForm": "an action that sends a form",
    "/ImportData": "an action that imports data",
    "/GoToR": "an action that opens another file",
    "/GoToE": "an action that opens an embedded file",
    "/Rendition": "embedded media",
    "/RichMediaExecute": "embedded media",
}
# …and object types and annotation subtypes.
_PDF_ACTIVE_TYPES = {
    "/EmbeddedFile": "embedded files",
    "/FileAttachment": "embedded files",
    "/RichMedia": "embedded media",
}
# A hand-made PDF can hold millions of tiny objects; a receipt or a scan holds thousands.
_PDF_MAX_OBJECTS = 200_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanFile:
    """An upload that passed `evidence_clean`: the bytes to store and what they are."""

    content: bytes
    content_type: str
    name: str  # as uploaded; `evidence_add` keeps a sanitised copy as display data

    @property
    def size(self) -> int:
        return len(self.content)


def refusal(message: str) -> ValidationFailed:
    return ValidationFailed(message, fields={"file": [message]})


def evidence_clean(*, upload: Any) -> CleanFile:
    """Judge an upload by its content and return the copy to store; raise `ValidationFailed`
    (on the `file` field) with a reason a person can act on."""
    if isinstance(upload, CleanFile):
        return upload
    data = _read(upload)
    mime = _sniff(data)
    fmt = ACCEPTED_TYPES[mime]
    content = _clean_pdf(data) if fmt is None else _reencode_image(data, fmt)
    return CleanFile(content=content, content_type=mime, name=str(getattr(upload, "name", "")))


def _read(upload: Any) -> bytes:
    max_bytes = settings.EVIDENCE_MAX_BYTES
    megabytes = max_bytes // (1024 * 1024) or 1
    too_large = refusal(f"The file is too large: at most {megabytes} MB ({max_bytes:,} bytes).")
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise too_large
    upload.seek(0)
    data = upload.read(max_bytes + 1)  # the declared size is the client's word; this is ours
    upload.seek(0)
    if len(data) > max_bytes:
        raise too_large
    if not data:
        raise refusal("The file is empty.")
    return bytes(data)


def _sniff(data: bytes) -> str:
    kind = filetype.guess(data[:_SNIFF_BYTES])
    if kind is None or kind.mime not in ACCEPTED_TYPES:
        raise refusal("Only JPEG, PNG, WebP images and PDF documents can be attached.")
    return str(kind.mime)


# --- images ------------------------------------------------------------------------------------


def _reencode_image(data: bytes, fmt: str) -> bytes:
    """Decode every pixel and encode them again in the same format, with nothing else."""
    max_pixels = settings.EVIDENCE_MAX_PIXELS
    too_big = refusal(f"The image is too large: at most {max_pixels:,} pixels.")
    unreadable = refusal("The image could not be read; attach a JPEG, PNG or WebP file.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice it; a bomb is an error here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # The header alone says how big the image is: refuse a bomb before decoding it.
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > max_pixels:
                    raise too_big
                if probe.format != fmt:
                    raise unreadable
                probe.verify()  # chunk checksums (PNG); verify() leaves the image unusable
            with Image.open(io.BytesIO(data)) as image:
                if getattr(image, "n_frames", 1) > 1:
                    raise refusal(
                        "Animated images cannot be attached; attach a still image or a "
                        "screenshot of the frame that matters."
                    )
                options = _save_options(image, fmt, data)
                image.load()  # a truncated or corrupt image fails here
                ImageOps.exif_transpose(image, in_place=True)
                pixels = _in_srgb(image)
                # Nothing of the file's metadata goes to the encoder: only what the pixels
                # need (the transparent colour of a palette or grey image).
                pixels.info = {k: v for k, v in image.info.items() if k == "transparency"}
                out = io.BytesIO()
                pixels.save(out, fmt, **options)
                return out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_big from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise unreadable from exc


def _save_options(image: Image.Image, fmt: str, data: bytes) -> dict[str, Any]:
    """Encode about as the original was: a JPEG with its own quantisation tables and chroma
    subsampling (little second-generation loss, a similar size), a lossless WebP losslessly."""
    if fmt == "JPEG":
        options: dict[str, Any] = {"subsampling": JpegImagePlugin.get_sampling(image)}
        if quantization := getattr(image, "quantization", None):
            options["qtables"] = quantization
        else:
            options["quality"] = 90
        return options
    if fmt == "WEBP":
        # libwebp's default effort (method 4) takes ten times as long as method 2 on a 40 MP
        # photo for a file a few per cent smaller; methods 0 and 1 overflow on such photos.
        if _webp_is_lossless(data):
            return {"lossless": True, "method": 0}
        return {"quality": 90, "method": 2}
    return {}


def _webp_is_lossless(data: bytes) -> bool:
    """Whether the WebP's image data is a `VP8L` (lossless) chunk, walking the RIFF chunks."""
    offset = 12
    while offset + 8 <= len(data):
        chunk = data[offset : offset + 4]
        length = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk in (b"VP8L", b"VP8 "):
            return chunk == b"VP8L"
        offset += 8 + length + (length & 1)
    return False


def _in_srgb(image: Image.Image) -> Image.Image:
    """The image's pixels in sRGB, when it carries a colour profile: a photo from a wide-gamut
    camera keeps its colours without keeping the profile (which can hold any text)."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        output = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=output
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A profile that does not fit the pixels: they are shown as they are, without it.
        return image
    return converted if converted is not None else image


# --- PDFs --------------------------------------------------------------------------------------


def _clean_pdf(data: bytes) -> bytes:
    """The PDF as it came, once a parser opens it and nothing in it acts on its own."""
    unreadable = refusal("The PDF could not be read; attach a PDF a viewer opens.")
    end = data.rfind(b"%%EOF")
    if end < 0:
        raise unreadable  # cut off before its end
    if data[end + len(b"%%EOF") :].strip(_PDF_WHITESPACE):
        # Another file after the PDF's end: a polyglot that is also a ZIP, a page or a script.
        raise refusal("The PDF has other data after its end; attach the PDF alone.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pypdf warns about what it tolerates
            # Strict: a PDF whose cross-reference table or catalog needs repairs is refused,
            # as a viewer's guess at what it means may not be the parser's.
            reader = PdfReader(io.BytesIO(data), strict=True)
            if reader.is_encrypted:
                raise refusal(
                    "Encrypted or password-protected PDFs cannot be attached; "
                    "print it to a new PDF and attach that."
                )
            if reader.root_object.get("/Type") != "/Catalog" or len(reader.pages) < 1:
                raise unreadable
            found = _pdf_active_content(reader)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise unreadable from exc
    except RecursionError as exc:  # a page tree or object graph nested without end
        raise unreadable from exc
    if found:
        raise refusal(
            f"PDFs with {found} cannot be attached; print it to a new PDF and attach that."
        )
    return data


def _pdf_active_content(reader: PdfReader) -> str | None:
    """What active content the document holds (“a script”, “embedded files”…), or None.

    Walks every object reachable from the trailer, resolving references once each, so names
    hidden in object streams or spelt with `#xx` escapes are seen as a viewer sees them.
    Streams' data is not decoded: only their dictionaries can make a viewer act.
    """
    stack: list[PdfObject | Any] = [reader.trailer]
    seen: set[tuple[int, int]] = set()
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            if len(seen) > _PDF_MAX_OBJECTS:
                raise ValueError("too many objects")
            obj = obj.get_object()
        if isinstance(obj, DictionaryObject):
            for key in dict.keys(obj):
                if key in _PDF_ACTIVE_KEYS:
                    return _PDF_ACTIVE_KEYS[key]
            for key, table in (
                ("/S", _PDF_ACTIVE_ACTIONS),
                ("/Type", _PDF_ACTIVE_TYPES),
                ("/Subtype", _PDF_ACTIVE_TYPES),
            ):
                value = dict.get(obj, key)
                if isinstance(value, IndirectObject):
                    value = value.get_object()
                if isinstance(value, str) and value in table:
                    return table[value]
            stack.extend(dict.values(obj))
        elif isinstance(obj, ArrayObject):
            stack.extend(list.__iter__(obj))
    return None
