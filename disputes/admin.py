"""The staff dispute desk (docs/rules.md, Who uses it; Deciding a dispute): the queue by SLA, the
file, and the decision.

The change page is read-only (state, statements, deadlines): staff act through the actions
("assign to me", "start review") and the two desk forms ("request info", "decide"), which call
the same services as the API. Everything a page shows is loaded in a fixed number of queries:
the changelist joins its rows and ranks them by SLA in SQL; the change page reads the
evidence, the transcript, the dispute thread and the audit trail with one query each.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from kernel import windows
from kernel.errors import DomainError
from kernel.money import format_money
from kernel.security import security_event
from kernel.signin import reauth_refusal
from kernel.text import TextCheckedForm
from orders.admin import ReadOnlyAdmin
from orders.models import Order, User
from refunds.models import Evidence

from . import services
from .models import UNDECIDED_STATES, Dispute, Party
from .rules import dispute_action_refusal, dispute_author_role, dispute_can_decide_now
from .selectors import (
    DISPUTE_RELATED,
    SLA_ORDERING,
    dispute_events,
    dispute_messages,
    dispute_queue,
    dispute_transcript,
    evidence_url,
)

# --- changelist filters -------------------------------------------------------------------------


class SlaFilter(admin.SimpleListFilter):
    title = _("SLA")
    parameter_name = "sla"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("overdue", _("Overdue (past the hard deadline)")),
            ("target", _("Past the target")),
            ("on_time", _("On time")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> QuerySet[Dispute]:
        now = timezone.now()
        undecided = queryset.filter(state__in=UNDECIDED_STATES)
        if self.value() == "overdue":
            return undecided.filter(decision_due__lt=now)
        if self.value() == "target":
            return undecided.filter(decision_target__lt=now)
        if self.value() == "on_time":
            return undecided.filter(decision_target__gte=now)
        return queryset


class AssignedFilter(admin.SimpleListFilter):
    title = _("assigned to")
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("me", _("Me")), ("nobody", _("Nobody"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> QuerySet[Dispute]:
        if self.value() == "me":
            return queryset.filter(assigned_to=_user(request))
        if self.value() == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        return queryset


# --- desk forms ---------------------------------------------------------------------------------


class RequestInfoForm(TextCheckedForm):
    party = forms.ChoiceField(choices=Party.choices, widget=forms.RadioSelect, label=_("Ask"))
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), max_length=2000
    )


class DecideForm(TextCheckedForm):
    outcome = forms.ChoiceField(
        choices=[
            (Party.BUYER, _("For the buyer (refund)")),
            (Party.SELLER, _("For the seller (no refund)")),
        ],
        widget=forms.RadioSelect,
    )
    amount = forms.CharField(
        required=False,
        max_length=20,
        help_text=_("For the buyer only. Empty: the amount the buyer asked for."),
    )
    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        max_length=5000,
        help_text=_("Both parties read it with the decision."),
    )


def _user(request: HttpRequest) -> User:
    # The admin site lets only active staff in (admin_view): never anonymous here.
    return cast(User, request.user)


# --- rendering helpers --------------------------------------------------------------------------


def _when(instant: datetime | None) -> str:
    """A deadline in the marketplace zone and the viewer's (docs/rules.md, Marketplace time
    zone)."""
    if instant is None:
        return "—"
    return windows.format_both(instant, timezone.get_current_timezone_name())


def _thread(rows: list[Any], dispute: Dispute) -> SafeString:
    if not rows:
        return mark_safe("<p>—</p>")
    return format_html(
        '<table class="dispute-thread"><tbody>{}</tbody></table>',
        format_html_join(
            "",
            '<tr><td class="nowrap">{}</td><td><strong>{}</strong> ({})</td>'
            '<td class="desk-text">{}</td></tr>',
            (
                (
                    _when(m.created_at),
                    str(m.author),
                    dispute_author_role(m.author_id, dispute),
                    m.body,
                )
                for m in rows
            ),
        ),
    )


def _evidence_cell(evidence: Evidence) -> SafeString:
    url = evidence_url(evidence)
    if evidence.is_image:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" '
            'class="desk-thumb" loading="lazy"></a>{}',
            url,
            url,
            evidence.original_name,
            evidence.original_name,
        )
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">{}</a>', url, evidence.original_name
    )


# --- the desk -----------------------------------------------------------------------------------


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """The queue ordered by SLA; state changes only through the services."""

    class Media:
        # The desk's own classes (desk-text, desk-thumb, desk-overdue): no inline style under
        # the Content-Security-Policy (docs/architecture.md, Browser policies).
        css = {"all": ("css/admin-desk.css",)}

    list_display = (
        "short_id",
        "order_number",
        "buyer_email",
        "seller_email",
        "state",
        "target_display",
        "due_display",
        "assigned_to",
    )
    list_filter = ("state", SlaFilter, AssignedFilter)
    list_select_related = DISPUTE_RELATED
    search_fields = (
        "=public_id",
        "case__order__number",
        "case__order__buyer__email",
        "case__order__shop__owner__email",
        "contact_email",
    )
    list_per_page = 50
    actions = ("assign_to_me", "start_review")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "public_id",
                    "state",
                    "order_link",
                    "case_link",
                    "assigned_to",
                    "created_at",
                )
            },
        ),
        (
            _("SLA"),
            {
                "fields": (
                    "statement_by_display",
                    "target_display",
                    "due_display",
                    "statement_lapsed_at",
                    "target_flagged_at",
                    "due_flagged_at",
                )
            },
        ),
        (
            _("Buyer"),
            {
                "fields": (
                    "contact_name",
                    "contact_email",
                    "contact_phone",
                    "desired_display",
                    "refundable_display",
                    "statement",
                )
            },
        ),
        (_("Seller"), {"fields": ("seller_statement", "seller_statement_at")}),
        (
            _("Information requested"),
            {"fields": ("info_party", "info_question", "info_requested_at")},
        ),
        (
            _("Decision"),
            {
                "fields": (
                    "outcome",
                    "amount_display",
                    "rationale",
                    "decided_by",
                    "decided_at",
                    "withdrawn_at",
                )
            },
        ),
        (_("Evidence"), {"fields": ("evidence_display",)}),
        (_("Chat transcript (order messages)"), {"fields": ("transcript_display",)}),
        (_("Dispute messages"), {"fields": ("messages_display",)}),
        (_("Audit trail"), {"fields": ("trail_display",)}),
    )
    readonly_fields = (
        "public_id",
        "state",
        "order_link",
        "case_link",
        "assigned_to",
        "created_at",
        "statement_by_display",
        "target_display",
        "due_display",
        "statement_lapsed_at",
        "target_flagged_at",
        "due_flagged_at",
        "contact_name",
        "contact_email",
        "contact_phone",
        "desired_display",
        "refundable_display",
        "statement",
        "seller_statement",
        "seller_statement_at",
        "info_party",
        "info_question",
        "info_requested_at",
        "outcome",
        "amount_display",
        "rationale",
        "decided_by",
        "decided_at",
        "withdrawn_at",
        "evidence_display",
        "transcript_display",
        "messages_display",
        "trail_display",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispute]:
        return dispute_queue(now=timezone.now())

    def get_ordering(self, request: HttpRequest) -> tuple[Any, ...]:
        # Overdue first, then past target, then by hard deadline (an annotation, so here and
        # not in `ordering`, which the admin checks against model fields).
        return SLA_ORDERING

    def has_desk_permission(self, request: HttpRequest) -> bool:
        # Working the queue changes disputes (through the services): the change permission.
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm("disputes.change_dispute"))

    # --- columns --------------------------------------------------------------------------

    @admin.display(description="dispute", ordering="public_id")
    def short_id(self, dispute: Dispute) -> str:
        return dispute.short_id

    @admin.display(description="order", ordering="case__order__number")
    def order_number(self, dispute: Dispute) -> str:
        return dispute.case.order.number

    @admin.display(description="buyer", ordering="case__order__buyer__email")
    def buyer_email(self, dispute: Dispute) -> str:
        return dispute.case.order.buyer.email

    @admin.display(description="seller", ordering="case__order__shop__owner__email")
    def seller_email(self, dispute: Dispute) -> str:
        return dispute.case.order.shop.owner.email

    def _deadline(self, dispute: Dispute, instant: datetime, label: str) -> SafeString:
        if dispute.is_undecided and timezone.now() > instant:
            return format_html(
                '<strong class="desk-overdue">⚠ {}</strong> {}', label, _when(instant)
            )
        return format_html("{}", _when(instant))

    @admin.display(description="decision target", ordering="decision_target")
    def target_display(self, dispute: Dispute) -> SafeString:
        return self._deadline(dispute, dispute.decision_target, "past target")

    @admin.display(description="decision due", ordering="decision_due")
    def due_display(self, dispute: Dispute) -> SafeString:
        return self._deadline(dispute, dispute.decision_due, "overdue")

    @admin.display(description="seller statement by")
    def statement_by_display(self, dispute: Dispute) -> str:
        return _when(dispute.statement_by)

    @admin.display(description="amount asked")
    def desired_display(self, dispute: Dispute) -> str:
        return format_money(dispute.desired_amount, dispute.currency)

    @admin.display(description="order can still refund")
    def refundable_display(self, dispute: Dispute) -> str:
        order = dispute.case.order
        return format_money(order.refundable, order.currency)

    @admin.display(description="decided amount")
    def amount_display(self, dispute: Dispute) -> str:
        return "—" if dispute.amount is None else format_money(dispute.amount, dispute.currency)

    @admin.display(description="order")
    def order_link(self, dispute: Dispute) -> SafeString:
        order: Order = dispute.case.order
        label = (
            f"{order.number} · {format_money(order.total, order.currency)} · "
            f"{order.payment_method_label} · {order.buyer.email} → {order.shop.name}"
        )
        url = reverse("admin:orders_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="refund case")
    def case_link(self, dispute: Dispute) -> SafeString:
        case = dispute.case
        label = (
            f"{case.short_id} · {case.get_reason_display()} · "
            f"{format_money(case.amount, case.currency)} asked · {case.get_state_display()}"
        )
        url = reverse("admin:refunds_refundcase_change", args=[case.pk])
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="files")
    def evidence_display(self, dispute: Dispute) -> SafeString:
        files = list(
            Evidence.objects.filter(case_id=dispute.case_id)
            .select_related("uploaded_by")
            .order_by("-for_dispute", "created_at", "id")
        )
        if not files:
            return mark_safe("<p>—</p>")
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{} · {} ({})</td><td>{}</td></tr>",
                (
                    (
                        _evidence_cell(e),
                        "dispute" if e.for_dispute else "refund request",
                        e.kind or "—",
                        str(e.uploaded_by),
                        dispute_author_role(e.uploaded_by_id, dispute),
                        _when(e.created_at),
                    )
                    for e in files
                ),
            ),
        )

    @admin.display(description="transcript")
    def transcript_display(self, dispute: Dispute) -> SafeString:
        return _thread(list(dispute_transcript(dispute=dispute)), dispute)

    @admin.display(description="messages")
    def messages_display(self, dispute: Dispute) -> SafeString:
        return _thread(list(dispute_messages(dispute=dispute)), dispute)

    @admin.display(description="events")
    def trail_display(self, dispute: Dispute) -> SafeString:
        events = list(dispute_events(dispute=dispute))
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join(
                "",
                '<tr><td class="nowrap">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
                (
                    (
                        _when(e.created_at),
                        e.kind,
                        f"{e.from_state} → {e.to_state}"
                        if e.from_state != e.to_state
                        else e.to_state,
                        e.actor_label,
                        e.note,
                    )
                    for e in events
                ),
            ),
        )

    # --- actions on the changelist ---------------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Dispute],
        verb: str,
        run: Callable[[Dispute], Any],
    ) -> None:
        done, refused = 0, []
        for dispute in queryset.order_by("pk"):
            try:
                run(dispute)
            except DomainError as exc:
                refused.append(f"{dispute.short_id}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} dispute(s).", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description="Assign to me", permissions=["desk"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._each(
            request,
            queryset,
            "Assigned",
            lambda d: services.dispute_assign(
                dispute=d, staff=_user(request), assignee=_user(request)
            ),
        )

    @admin.action(description="Start review", permissions=["desk"])
    def start_review(self, request: HttpRequest, queryset: QuerySet[Dispute]) -> None:
        self._each(
            request,
            queryset,
            "Started reviewing",
            lambda d: services.dispute_start_review(dispute=d, staff=_user(request)),
        )

    # --- the desk forms --------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/request-info/",
                self.admin_site.admin_view(self.request_info_view),
                name="{}_{}_request_info".format(*info),
            ),
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="{}_{}_decide".format(*info),
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Dispute | None = None,
    ) -> HttpResponse:
        links = []
        if obj is not None and self.has_desk_permission(request):
            # The desk offers what the dispute's rule allows this staff member now.
            now = timezone.now()
            for action, label in (("request_info", _("Request info")), ("decide", _("Decide"))):
                if dispute_action_refusal(dispute=obj, user=_user(request), action=action, now=now):
                    continue
                url = reverse(f"admin:disputes_dispute_{action}", args=[obj.pk])
                links.append({"url": url, "label": label})
        context["desk_links"] = links
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def request_info_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def run(dispute: Dispute, data: dict[str, Any]) -> str:
            services.dispute_request_info(
                dispute=dispute,
                staff=_user(request),
                party=data["party"],
                question=data["question"],
            )
            return f"Asked the {data['party']} for information."

        return self._desk_form(
            request,
            object_id,
            RequestInfoForm,
            _("Request information"),
            _("Send the question"),
            run,
        )

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # A decision moves money: the password again when it was given too long ago
        # (docs/architecture.md, Accounts and security).
        if (stale := reauth_refusal(request)) is not None:
            return stale

        def run(dispute: Dispute, data: dict[str, Any]) -> str:
            decided = services.dispute_decide(
                dispute=dispute,
                staff=_user(request),
                outcome=data["outcome"],
                amount=data["amount"] or None,
                rationale=data["rationale"],
            )
            security_event(
                "money_decision",
                request=request,
                decision="dispute_decide",
                dispute=str(decided.public_id),
                outcome=decided.outcome,
                amount=None if decided.amount is None else str(decided.amount),
                currency=decided.currency,
            )
            return f"Decided {decided.get_state_display().lower()}."

        return self._desk_form(
            request, object_id, DecideForm, _("Decide the dispute"), _("Decide"), run
        )

    def _desk_form(
        self,
        request: HttpRequest,
        object_id: str,
        form_class: type[forms.Form],
        title: Any,
        submit_label: Any,
        run: Callable[[Dispute, dict[str, Any]], str],
    ) -> HttpResponse:
        if not self.has_desk_permission(request):
            raise PermissionDenied
        dispute = self.get_object(request, unquote(object_id))
        if dispute is None:
            raise Http404("No such dispute.")
        change_url = reverse("admin:disputes_dispute_change", args=[dispute.pk])
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                done = run(dispute, form.cleaned_data)
            except DomainError as exc:
                known = {k: v for k, v in (exc.fields or {}).items() if k in form.fields}
                for field, errors in known.items():
                    form.add_error(field, errors)
                if not known:
                    form.add_error(None, exc.message)
            else:
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        order = dispute.case.order
        now = timezone.now()
        summary = [
            (_("Order"), f"{order.number} ({order.payment_method_label})"),
            (_("State"), dispute.get_state_display()),
            (_("Amount asked"), format_money(dispute.desired_amount, dispute.currency)),
            (_("Order can still refund"), format_money(order.refundable, order.currency)),
            (
                _("Seller statement"),
                _("on file")
                if dispute.seller_statement_at
                else _("none yet; due ") + _when(dispute.statement_by),
            ),
            (_("Decision due"), _when(dispute.decision_due)),
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "original": dispute,
            "form": form,
            "summary": summary,
            "submit_label": submit_label,
            "change_url": change_url,
            "decidable": dispute_can_decide_now(dispute=dispute, now=now),
            "is_decide": form_class is DecideForm,
        }
        return TemplateResponse(request, "admin/disputes/dispute/desk_form.html", context)
