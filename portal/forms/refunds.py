"""Forms of the refund pages. They check the shape of the input; the rules are the services'."""

from __future__ import annotations

from typing import Any

from django import forms

from kernel.money import format_amount
from orders.models import Order
from portal.forms.base import PortalForm
from refunds.models import Reason

EVIDENCE_HELP = "JPEG, PNG, WebP or PDF; at most 10 MB each and 10 files per case."


class ReasonForm(PortalForm):
    """Step 2: why. Each choice shows its own window (the template renders the radios)."""

    reason = forms.ChoiceField(
        label="Why do you want a refund?",
        choices=Reason.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose the reason that fits best."},
    )


RETURN_CHOICES = [("no", "No, I keep the item"), ("yes", "Yes, I will send it back")]


class DetailsForm(PortalForm):
    """Step 3: how much, which items, whether the item goes back, what happened."""

    amount = forms.CharField(
        label="Amount you want back",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    return_item = forms.ChoiceField(
        label="Will you send the item back?",
        choices=RETURN_CHOICES,
        widget=forms.RadioSelect,
        initial="no",
    )
    description = forms.CharField(
        label="What happened?",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="A few words help the seller answer quickly: what is wrong, what you expected.",
    )

    def __init__(self, *args: Any, order: Order, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order = order
        self.item_fields: list[tuple[Any, str]] = []
        for item in order.items.all():
            name = f"item_{item.pk}"
            self.fields[name] = forms.TypedChoiceField(
                label=f"{item.title} (ordered: {item.quantity})",
                choices=[(n, str(n)) for n in range(item.quantity + 1)],
                coerce=int,
                initial=0,
                required=False,
            )
            self.item_fields.append((item, name))
        self.fields["amount"].help_text = (
            f"In {order.currency}, at most {format_amount(order.refundable, order.currency)} "
            "(what this order can still "
            "refund). Leave the items at 0 to ask for an amount only."
        )

    def item_quantities(self) -> dict[int, int]:
        return {
            item.pk: self.cleaned_data.get(name) or 0
            for item, name in self.item_fields
            if self.cleaned_data.get(name)
        }

    def item_rows(self) -> list[tuple[Any, Any]]:
        return [(item, self[name]) for item, name in self.item_fields]


class CaseMessageForm(PortalForm):
    body = forms.CharField(
        label="Your message", max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )


EVIDENCE_KIND_CHOICES = [
    ("photo", "Photo of the item"),
    ("receipt", "Receipt or proof of payment"),
    ("shipping", "Shipping details"),
    ("chat", "Chat screenshot"),
    ("other", "Other"),
]


class EvidenceForm(PortalForm):
    file = forms.FileField(
        label="File",
        help_text=EVIDENCE_HELP,
        error_messages={"required": "Choose a file to attach."},
    )
    kind = forms.ChoiceField(label="What is it?", choices=EVIDENCE_KIND_CHOICES, initial="photo")


class OfferForm(PortalForm):
    amount = forms.CharField(
        label="Amount you offer",
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    )


class RejectForm(PortalForm):
    reason = forms.CharField(
        label="Why do you reject the request?",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The buyer reads this, and staff read it if the buyer opens a dispute.",
        error_messages={"required": "Tell the buyer why the request is rejected."},
    )


class ShipReturnForm(PortalForm):
    carrier = forms.CharField(
        label="Carrier", max_length=80, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    tracking_number = forms.CharField(
        label="Tracking number",
        max_length=80,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
