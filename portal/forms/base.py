"""Forms of the order pages, and the form plumbing every page of the portal shares.

Forms check the shape of what was typed; the rules live in the services. A `DomainError` from a
service becomes form errors next to the fields it names (docs/architecture.md, Errors) with
`apply_domain_error`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms

from kernel import windows
from kernel.errors import DomainError
from kernel.text import TextCheckedForm


class PortalForm(TextCheckedForm):
    """Marks invalid inputs for assistive technology: `aria-invalid` and a link to the error.
    Text fields follow docs/rules.md, Text fields (`TextCheckedForm`)."""

    def add_error(self, field: str | None, error: Any) -> None:
        super().add_error(field, error)
        self._mark_invalid()

    def full_clean(self) -> None:
        super().full_clean()
        self._mark_invalid()

    def _mark_invalid(self) -> None:
        for name in getattr(self, "_errors", None) or {}:
            if name in self.fields:
                field = self.fields[name]
                auto_id = self[name].auto_id
                described = [f"{auto_id}_error"]
                if field.help_text:
                    described.append(f"{auto_id}_helptext")
                field.widget.attrs["aria-invalid"] = "true"
                field.widget.attrs["aria-describedby"] = " ".join(described)


def apply_domain_error(
    form: forms.Form, exc: DomainError, *, rename: dict[str, str] | None = None
) -> None:
    """Put a service's error next to the field it names; anything else above the form."""
    rename = rename or {}
    placed = False
    for name, messages in (exc.fields or {}).items():
        target = rename.get(name, name)
        if target in form.fields:
            for message in messages:
                form.add_error(target, _plain(message, exc))
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def _plain(message: str, exc: DomainError) -> str:
    # A single-field error: the service's full sentence says more than the API's terse field
    # message ("Closed 8 Nov …" vs "The window for 'Changed my mind' closed on 8 Nov …").
    if len(exc.fields or {}) == 1:
        return exc.message
    return message


class OrderMessageForm(PortalForm):
    body = forms.CharField(
        label="Your message",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The seller and the buyer see this thread; it becomes part of any dispute.",
    )


UNIT_CHOICES = [("minutes", "minutes"), ("hours", "hours"), ("days", "days")]


class ReturnPolicyForm(PortalForm):
    """The shop's change-of-mind return window: a number and a unit (15 minutes … 30 days)."""

    number = forms.IntegerField(label="How long", min_value=1, max_value=43200)
    unit = forms.ChoiceField(label="Unit", choices=UNIT_CHOICES)

    @staticmethod
    def initial_for(value: timedelta) -> dict[str, Any]:
        minutes = int(value.total_seconds()) // 60
        if minutes % 1440 == 0:
            return {"number": minutes // 1440, "unit": "days"}
        if minutes % 60 == 0:
            return {"number": minutes // 60, "unit": "hours"}
        return {"number": minutes, "unit": "minutes"}

    def duration(self) -> timedelta:
        return timedelta(**{self.cleaned_data["unit"]: self.cleaned_data["number"]})

    @staticmethod
    def bounds() -> tuple[timedelta, timedelta]:
        low, high = windows.window("return_policy_min"), windows.window("return_policy_max")
        assert isinstance(low, timedelta) and isinstance(high, timedelta)
        return low, high
