"""Text as people type it (docs/rules.md, Text fields): a single-line field (a name, a card brand,
a carrier, a tracking number, a shop name) refuses line breaks and every other control character;
a multi-line field (a message, a statement, a note, a description) keeps CR and LF exactly as
given and refuses the other control characters.

A line break in a single-line value ends up in an email header, a CSV export or a log line as a
second line nobody wrote there. The rule is applied where input enters, once per kind of door:
`api.toolkit.StrictSerializer` (every API body), `TextCheckedForm` (every page and desk form),
and the model fields below (the admin's model forms).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

# Unicode's control characters (Cc: C0, DEL, C1) and the line and paragraph separators.
_NOT_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Multi-line text keeps tab, LF and CR; the other control characters are refused there too.
_NOT_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

SINGLE_LINE_REFUSAL = "One line only: no line breaks, tabs or other control characters."
MULTI_LINE_REFUSAL = "Control characters other than line breaks and tabs are not allowed."


def text_refusal(value: str, *, multi_line: bool) -> str | None:
    """Why `value` may not be stored in a field of that kind, or None."""
    if multi_line:
        return MULTI_LINE_REFUSAL if _NOT_IN_TEXT.search(value) else None
    return SINGLE_LINE_REFUSAL if _NOT_IN_A_LINE.search(value) else None


def validate_single_line(value: Any) -> None:
    if isinstance(value, str) and text_refusal(value, multi_line=False):
        raise ValidationError(SINGLE_LINE_REFUSAL, code="control_characters")


def validate_multi_line(value: Any) -> None:
    if isinstance(value, str) and text_refusal(value, multi_line=True):
        raise ValidationError(MULTI_LINE_REFUSAL, code="control_characters")


class SingleLineCharField(models.CharField):
    """A `CharField` that refuses line breaks and control characters in `full_clean` (the
    admin's model forms)."""

    default_validators = [validate_single_line]

    def deconstruct(self) -> Any:
        # A validator is not schema: migrations keep Django's own field, so adding the rule to
        # a field never needs a migration.
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.CharField", args, kwargs


class MultiLineTextField(models.TextField):
    """A `TextField` that keeps CR and LF and refuses the other control characters."""

    default_validators = [validate_multi_line]

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.TextField", args, kwargs


class TextCheckedForm(forms.Form):
    """Every text field of the form follows the rule of its kind: a `Textarea` is multi-line,
    any other text input is single-line. The raw value is judged, before Django strips its
    ends, so a trailing line break is refused too rather than silently dropped. Passwords are
    secrets, not text anyone reads, and are left alone."""

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound:
            return
        for name, field in self.fields.items():
            if not isinstance(field, forms.CharField) or field.disabled or name in self.errors:
                continue
            if isinstance(field.widget, forms.PasswordInput):  # a secret, never shown as text
                continue
            raw = self[name].data
            if not isinstance(raw, str):
                continue
            refusal = text_refusal(raw, multi_line=isinstance(field.widget, forms.Textarea))
            if refusal is not None:
                self.add_error(name, refusal)
