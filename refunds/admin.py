"""The staff desk for refund cases and their evidence (docs/rules.md, Who uses it).

Cases move only through the services and the sweeps: staff are not a party of a case, so the
change page is read-only (state, money, deadlines), with the audit trail, the message thread and
the evidence shown underneath. The one staff action runs the deadline sweep now, the same code
the beat task runs. Every page joins what it shows: a changelist of 100 cases costs the same
queries as one of 10, and a case with 30 messages the same as one with 1.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from kernel.money import format_money
from kernel.security import security_event
from kernel.signin import reauth_refusal
from orders.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import Evidence, RefundCase, RefundItem
from .selectors import refund_messages, refund_timeline
from .sweeps import refund_apply_due_deadlines, refund_sweeps_run


def _download_link(evidence: Evidence) -> SafeString:
    url = reverse("refunds_files:evidence-download", kwargs={"evidence_id": evidence.public_id})
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">{}</a>', url, evidence.original_name
    )


class RefundItemInline(ReadOnlyInline):
    model = RefundItem
    fields = ("sku", "title", "quantity")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[RefundItem]:
        return super().get_queryset(request).select_related("order_item")

    @admin.display(description="SKU")
    def sku(self, item: RefundItem) -> str:
        return item.order_item.sku

    @admin.display(description="title")
    def title(self, item: RefundItem) -> str:
        return item.order_item.title


class EvidenceInline(ReadOnlyInline):
    model = Evidence
    fields = (
        "download",
        "kind",
        "content_type",
        "size",
        "for_dispute",
        "uploaded_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Evidence]:
        return super().get_queryset(request).select_related("uploaded_by")

    @admin.display(description="file")
    def download(self, evidence: Evidence) -> SafeString:
        return _download_link(evidence)


@admin.register(RefundCase)
class RefundCaseAdmin(ReadOnlyAdmin):
    """Read-only: a case changes state only through the parties' services and the sweeps."""

    class Media:
        # The desk's own classes (desk-text, desk-thumb, desk-overdue): no inline style under
        # the Content-Security-Policy (docs/architecture.md, Browser policies).
        css = {"all": ("css/admin-desk.css",)}

    list_display = (
        "short_id",
        "order_number",
        "buyer_email",
        "shop",
        "state",
        "closed_reason",
        "reason",
        "amount_display",
        "return_number_display",
        "respond_by",
        "created_at",
    )
    list_filter = ("state", "reason", "closed_reason", "return_item", "auto_accepted")
    list_select_related = ("order", "order__buyer", "order__shop")
    search_fields = (
        "public_id",
        "order__number",
        "return_number",
        "order__buyer__email",
        "order__shop__owner__email",
    )
    date_hierarchy = "created_at"
    actions = ("apply_due_deadlines", "run_deadline_sweep")
    inlines = (RefundItemInline, EvidenceInline)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "order",
                    "buyer_email",
                    "shop",
                    "state",
                    "closed_reason",
                    "reason",
                    "description",
                    "return_item",
                    "auto_accepted",
                )
            },
        ),
        (
            _("Money"),
            {
                "fields": (
                    "amount_display",
                    "offer_display",
                    "approved_display",
                    "refunded_display",
                    "payout",
                )
            },
        ),
        (
            _("Deadlines"),
            {"fields": ("respond_by", "offer_by", "return_by", "confirm_by", "dispute_by")},
        ),
        (
            _("Return"),
            {
                "fields": (
                    "return_number_display",
                    "rma_issued_at",
                    "return_carrier",
                    "return_tracking_number",
                    "return_shipped_at",
                )
            },
        ),
        (
            _("Answer"),
            {"fields": ("answered_at", "reject_reason", "approved_at", "refunded_at", "closed_at")},
        ),
        (_("Audit trail"), {"fields": ("timeline",)}),
        (_("Messages"), {"fields": ("thread",)}),
        (_("Dates"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "public_id",
        "order",
        "buyer_email",
        "shop",
        "state",
        "closed_reason",
        "reason",
        "description",
        "return_item",
        "auto_accepted",
        "amount_display",
        "offer_display",
        "approved_display",
        "refunded_display",
        "payout",
        "respond_by",
        "offer_by",
        "return_by",
        "confirm_by",
        "dispute_by",
        "return_number_display",
        "rma_issued_at",
        "return_carrier",
        "return_tracking_number",
        "return_shipped_at",
        "answered_at",
        "reject_reason",
        "approved_at",
        "refunded_at",
        "closed_at",
        "timeline",
        "thread",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[RefundCase]:
        return (
            super()
            .get_queryset(request)
            .select_related("order", "order__buyer", "order__shop", "order__shop__owner", "payout")
        )

    def has_sweep_permission(self, request: HttpRequest) -> bool:
        # The sweep changes cases (as the system would); it takes the change permission.
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm("refunds.change_refundcase"))

    @admin.display(description="case", ordering="public_id")
    def short_id(self, case: RefundCase) -> str:
        return case.short_id

    @admin.display(description="order", ordering="order__number")
    def order_number(self, case: RefundCase) -> str:
        return case.order.number

    @admin.display(description="buyer", ordering="order__buyer__email")
    def buyer_email(self, case: RefundCase) -> str:
        return case.order.buyer.email

    @admin.display(description="shop", ordering="order__shop__name")
    def shop(self, case: RefundCase) -> str:
        return case.order.shop.name

    @admin.display(description="amount asked", ordering="amount")
    def amount_display(self, case: RefundCase) -> str:
        return format_money(case.amount, case.currency)

    @admin.display(description="offer")
    def offer_display(self, case: RefundCase) -> str:
        return format_money(case.offer_amount, case.currency) if case.offer_amount else "—"

    @admin.display(description="approved")
    def approved_display(self, case: RefundCase) -> str:
        if case.approved_amount is None:
            return "—"
        return format_money(case.approved_amount, case.currency)

    @admin.display(description="refunded")
    def refunded_display(self, case: RefundCase) -> str:
        return format_money(case.refunded_amount, case.currency)

    @admin.display(description="return number", ordering="return_number")
    def return_number_display(self, case: RefundCase) -> str:
        return case.issued_return_number or "—"

    @admin.display(description="events")
    def timeline(self, case: RefundCase) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(e.created_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
                    e.kind,
                    e.from_state or "·",
                    e.to_state or "·",
                    e.actor_label,
                    e.note,
                )
                for e in refund_timeline(case=case)
            ),
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>event</th><th>state</th><th>by</th>"
            "<th>note</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="thread")
    def thread(self, case: RefundCase) -> SafeString:
        buyer_id = case.order.buyer_id
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} ({})</td><td class='desk-text'>{}</td></tr>",
            (
                (
                    timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
                    m.author.email,
                    "buyer" if m.author_id == buyer_id else "seller",
                    m.body,
                )
                for m in refund_messages(case=case)
            ),
        )
        if not rows:
            return format_html("<p>{}</p>", "No messages.")
        return format_html(
            "<table><thead><tr><th>at</th><th>from</th><th>message</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(
        description="Apply the passed deadline of the selected cases now",
        permissions=["sweep"],
    )
    def apply_due_deadlines(
        self, request: HttpRequest, queryset: QuerySet[RefundCase]
    ) -> HttpResponse | None:
        # An auto-accept approves a refund and pays it out: a money decision, made with a recent
        # password (docs/architecture.md, Accounts and security).
        if (stale := reauth_refusal(request)) is not None:
            return stale
        ids = list(queryset.values_list("pk", flat=True))
        moved = refund_apply_due_deadlines(case_ids=ids, now=timezone.now())
        total = sum(moved.values())
        security_event(
            "money_decision", request=request, decision="refund_apply_due_deadlines", moved=moved
        )
        detail = ", ".join(f"{name}: {count}" for name, count in moved.items() if count)
        self.message_user(
            request,
            f"{total} of {len(ids)} selected case(s) moved"
            + (f" ({detail})." if detail else "; no selected case had a passed deadline."),
            messages.SUCCESS if total else messages.WARNING,
        )
        return None

    @admin.action(
        description="Run the deadline sweep now (every due case, not only these)",
        permissions=["sweep"],
    )
    def run_deadline_sweep(
        self, request: HttpRequest, queryset: QuerySet[RefundCase]
    ) -> HttpResponse | None:
        if (stale := reauth_refusal(request)) is not None:
            return stale
        moved = refund_sweeps_run(now=timezone.now())
        total = sum(moved.values())
        security_event("money_decision", request=request, decision="refund_sweeps_run", moved=moved)
        detail = ", ".join(f"{name}: {count}" for name, count in moved.items() if count)
        self.message_user(
            request,
            f"Deadline sweep moved {total} case(s)" + (f" ({detail})." if detail else "."),
            messages.SUCCESS,
        )
        return None


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    """Files are added by the parties through `evidence_add`; staff read them here."""

    list_display = (
        "original_name",
        "case_link",
        "order_number",
        "kind",
        "content_type",
        "size",
        "for_dispute",
        "uploaded_by",
        "created_at",
    )
    list_filter = ("content_type", "for_dispute", "kind")
    list_select_related = ("case", "case__order", "uploaded_by")
    search_fields = (
        "original_name",
        "case__order__number",
        "case__public_id",
        "uploaded_by__email",
    )
    fields = (
        "public_id",
        "download",
        "case",
        "kind",
        "content_type",
        "size",
        "for_dispute",
        "uploaded_by",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Evidence]:
        return super().get_queryset(request).select_related("case", "case__order", "uploaded_by")

    @admin.display(description="file")
    def download(self, evidence: Evidence) -> SafeString:
        return _download_link(evidence)

    @admin.display(description="case")
    def case_link(self, evidence: Evidence) -> SafeString:
        url = reverse("admin:refunds_refundcase_change", args=[evidence.case_id])
        return format_html('<a href="{}">{}</a>', url, evidence.case.short_id)

    @admin.display(description="order", ordering="case__order__number")
    def order_number(self, evidence: Evidence) -> str:
        return evidence.case.order.number
