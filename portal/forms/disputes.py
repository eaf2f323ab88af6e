"""Forms of the dispute pages (docs/rules.md, Disputes): what the marketplace's own dispute form
asks."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.forms.base import PortalForm

OUTCOME_CHOICES = [("full", "The full amount"), ("partial", "Part of it")]
# The three kinds of proof the dispute form asks for, each its own file input.
DISPUTE_FILE_KINDS = [
    ("receipt", "Proof of payment (receipt)"),
    ("shipping", "Shipping details"),
    ("chat", "Chat screenshots"),
]


class DisputeOpenForm(PortalForm):
    contact_name = forms.CharField(
        label="Your name", max_length=150, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    contact_email = forms.CharField(
        label="Contact email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    contact_phone = forms.CharField(
        label="Phone",
        max_length=32,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
        help_text="In case staff need to reach you quickly, e.g. +86 138 0013 8000.",
    )
    statement = forms.CharField(
        label="What happened, and why the seller's answer is not right",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 6}),
        error_messages={"required": "Tell our staff what happened."},
    )
    outcome = forms.ChoiceField(
        label="What do you want back?",
        choices=OUTCOME_CHOICES,
        widget=forms.RadioSelect,
        initial="full",
    )
    desired_amount = forms.CharField(
        label="Amount",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )

    def __init__(self, *args: Any, full_amount: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.full_amount = full_amount

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("outcome") == "full":
            data["desired_amount"] = self.full_amount
        elif not (data.get("desired_amount") or "").strip():
            self.add_error("desired_amount", "Enter the part of the amount you want back.")
        return data


class StatementForm(PortalForm):
    body = forms.CharField(
        label="Your statement",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Your side of the story for our staff. You can add it once; write messages "
        "after that.",
        error_messages={"required": "Write your statement first."},
    )


class DisputeEvidenceForm(PortalForm):
    file = forms.FileField(
        label="File",
        help_text="JPEG, PNG, WebP or PDF; at most 10 MB; 10 files per dispute.",
        error_messages={"required": "Choose a file to attach."},
    )
    kind = forms.ChoiceField(
        label="What is it?", choices=[*DISPUTE_FILE_KINDS, ("photo", "Photo"), ("other", "Other")]
    )
