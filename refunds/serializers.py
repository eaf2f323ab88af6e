"""Input and output shapes of the refunds API (docs/api.md, Refund cases); no business rules live
here.

Amounts leave as strings with exactly the currency's decimals, instants as ISO 8601 in UTC
("…Z"). Output serializers read only what the selectors already loaded: a page of cases costs
the same queries whatever the number of cases, events or messages.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.toolkit import AmountInField, MultiLineCharField, StrictSerializer, UTCDateTimeField
from kernel.money import format_amount, format_optional_amount
from orders.models import Event

from .evidence import EVIDENCE_KINDS
from .models import ClosedReason, Evidence, Reason, RefundCase, State
from .rules import CASE_ACTIONS, refund_actions, refund_author_role, refund_role

_UTC = UTCDateTimeField()


# --- input ------------------------------------------------------------------------------------


class RefundItemIn(StrictSerializer):
    sku = serializers.CharField(max_length=64, help_text="A line of the order, by its SKU.")
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)


class RefundFileIn(StrictSerializer):
    order = serializers.CharField(max_length=64, help_text="The order's number.")
    reason = serializers.ChoiceField(choices=Reason.choices)
    amount = AmountInField(
        required=False,
        allow_null=True,
        default=None,
        help_text="What the buyer wants back, in the order's currency (0 < amount ≤ refundable). "
        "May be left out when items are given: their value is asked for.",
    )
    description = MultiLineCharField(max_length=5000, required=False, allow_blank=True, default="")
    return_item = serializers.BooleanField(required=False, default=False)
    items: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=RefundItemIn(), required=False, default=list, max_length=500
    )


class RefundOfferIn(StrictSerializer):
    amount = AmountInField(help_text='Less than the amount asked for, e.g. "20.00".')


class RefundRejectIn(StrictSerializer):
    reason = MultiLineCharField(max_length=2000, help_text="Shown to the buyer.")


class RefundShipReturnIn(StrictSerializer):
    carrier = serializers.CharField(max_length=80)
    tracking_number = serializers.CharField(max_length=80)


class RefundMessageIn(StrictSerializer):
    body = MultiLineCharField(max_length=5000)


class RefundEvidenceIn(serializers.Serializer):
    file = serializers.FileField(
        help_text="JPEG, PNG, WebP or PDF, judged by content; at most 10 MB, 10 per case.",
    )
    kind = serializers.ChoiceField(
        choices=[(k, k) for k in EVIDENCE_KINDS], required=False, allow_blank=True, default=""
    )


# --- output -----------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "decimal", "nullable": True, "example": "59.90"})
class CaseMoneyField(serializers.Field):
    """An amount of the case as a string with its currency's decimals; null when unset."""

    def __init__(self, attr: str, **kwargs: Any) -> None:
        self.attr = attr
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, case: Any) -> str | None:
        return format_optional_amount(getattr(case, self.attr), case.currency)


class RefundItemOut(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.CharField()


class RefundActorOut(serializers.Serializer):
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=["buyer", "seller", "staff"])


class RefundEventOut(serializers.Serializer):
    kind = serializers.CharField(help_text='e.g. "refund.accepted", "evidence.added"')
    from_state = serializers.CharField(allow_blank=True)
    to_state = serializers.CharField(allow_blank=True)
    actor = RefundActorOut(allow_null=True, help_text="null: the system (a deadline passed).")
    note = serializers.CharField(allow_blank=True)
    at = UTCDateTimeField()


class RefundActionOut(serializers.Serializer):
    action = serializers.ChoiceField(choices=[a.name for a in CASE_ACTIONS])
    until = UTCDateTimeField(allow_null=True, help_text="The deadline that ends this action.")


class RefundDeadlineOut(serializers.Serializer):
    party = serializers.ChoiceField(
        choices=["buyer", "seller"], help_text="Who must act before it."
    )
    at = UTCDateTimeField()


class RefundReturnShipmentOut(serializers.Serializer):
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    shipped_at = UTCDateTimeField()


def actor_out(event: Event, case: RefundCase) -> dict[str, str] | None:
    if event.actor_id is None:
        return None
    assert event.actor is not None
    return {"name": event.actor.display_name, "role": refund_author_role(event.actor_id, case)}


def items_out(items: Any, currency: str) -> list[dict[str, Any]]:
    return [
        {
            "sku": item.order_item.sku,
            "title": item.order_item.title,
            "quantity": item.quantity,
            "unit_price": format_amount(item.order_item.unit_price, currency),
        }
        for item in items
    ]


def timeline_out(events: list[Event], case: RefundCase) -> list[dict[str, Any]]:
    return [
        {
            "kind": e.kind,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "actor": actor_out(e, case),
            "note": e.note,
            "at": _UTC.to_representation(e.created_at),
        }
        for e in events
    ]


class RefundOut(serializers.Serializer):
    """A case as docs/api.md (Refund cases) lists it.

    Deadlines are the stored ones: each is set when its step begins and is null for a step the
    case never reached (no `return_by` without a return, no `dispute_by` unless it closed
    disputable). `deadline` is the one running now and who it binds. `return_number` shows
    only once issued.
    """

    id = serializers.UUIDField(source="public_id")
    order = serializers.CharField(source="order.number", help_text="The order's number.")
    state = serializers.ChoiceField(choices=State.choices)
    closed_reason = serializers.SerializerMethodField()
    reason = serializers.ChoiceField(choices=Reason.choices)
    description = serializers.CharField()
    currency = serializers.CharField()
    amount = CaseMoneyField("amount")
    offer_amount = CaseMoneyField("offer_amount")
    approved_amount = CaseMoneyField("approved_amount")
    refunded_amount = CaseMoneyField("refunded_amount")
    return_item = serializers.BooleanField()
    return_number = serializers.CharField(source="issued_return_number", allow_null=True)
    return_shipment = serializers.SerializerMethodField()
    reject_reason = serializers.SerializerMethodField()
    respond_by = UTCDateTimeField(allow_null=True)
    offer_by = UTCDateTimeField(allow_null=True)
    return_by = UTCDateTimeField(allow_null=True)
    confirm_by = UTCDateTimeField(allow_null=True)
    dispute_by = UTCDateTimeField(allow_null=True)
    deadline = serializers.SerializerMethodField()
    auto_accepted = serializers.BooleanField()
    items = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    messages = serializers.IntegerField(
        source="message_count", help_text="Messages on the order's thread."
    )
    timeline = serializers.SerializerMethodField()
    created_at = UTCDateTimeField()

    @extend_schema_field(serializers.ChoiceField(choices=ClosedReason.choices, allow_null=True))
    def get_closed_reason(self, case: RefundCase) -> str | None:
        return case.closed_reason or None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reject_reason(self, case: RefundCase) -> str | None:
        return case.reject_reason or None

    @extend_schema_field(RefundReturnShipmentOut(allow_null=True))
    def get_return_shipment(self, case: RefundCase) -> dict[str, Any] | None:
        if case.return_shipped_at is None:
            return None
        return RefundReturnShipmentOut(
            {
                "carrier": case.return_carrier,
                "tracking_number": case.return_tracking_number,
                "shipped_at": case.return_shipped_at,
            }
        ).data

    @extend_schema_field(RefundDeadlineOut(allow_null=True))
    def get_deadline(self, case: RefundCase) -> dict[str, Any] | None:
        running = case.deadline()
        if running is None or running[1] is None:
            return None
        return RefundDeadlineOut({"party": running[0], "at": running[1]}).data

    @extend_schema_field(RefundItemOut(many=True))
    def get_items(self, case: RefundCase) -> list[dict[str, Any]]:
        return items_out(case.items.all(), case.currency)

    @extend_schema_field(serializers.ChoiceField(choices=["buyer", "seller", "staff"]))
    def get_role(self, case: RefundCase) -> str:
        return refund_role(case=case, user=self.context["user"])

    @extend_schema_field(RefundActionOut(many=True))
    def get_actions(self, case: RefundCase) -> list[dict[str, Any]]:
        actions = refund_actions(case=case, user=self.context["user"], now=self.context["now"])
        return RefundActionOut(actions, many=True).data  # type: ignore[return-value]

    @extend_schema_field(RefundEventOut(many=True))
    def get_timeline(self, case: RefundCase) -> list[dict[str, Any]]:
        return timeline_out(self.context["timelines"].get(case.public_id, []), case)


class RefundEvidenceOut(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    kind = serializers.CharField(allow_blank=True)
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    for_dispute = serializers.BooleanField()
    uploaded_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    created_at = UTCDateTimeField()

    @extend_schema_field(RefundActorOut)
    def get_uploaded_by(self, evidence: Evidence) -> dict[str, str]:
        role = refund_author_role(evidence.uploaded_by_id, self.context["case"])
        return {"name": evidence.uploaded_by.display_name, "role": role}

    @extend_schema_field(serializers.URLField(help_text="Permission-checked download."))
    def get_url(self, evidence: Evidence) -> str:
        path = reverse(
            "refunds_files:evidence-download", kwargs={"evidence_id": evidence.public_id}
        )
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path
