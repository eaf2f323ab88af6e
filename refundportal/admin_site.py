"""The staff desk's admin site (docs/architecture.md, Accounts and security).

Only staff whose session has shown a second factor get in (the page middleware sends the others
to the second-factor page first; this is the site's own check, so a session that slipped past the
middleware still gets nothing). A marketplace service account never does. The sign-in form
refuses service accounts like the portal's, and `reauth/` is where a money decision sends a
staff member whose password is older than `REAUTH_MAX_AGE` (kernel/signin.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from kernel.security import security_event
from kernel.signin import signin_mark
from portal.accounts import page_session_refusal, second_factor_verified
from portal.forms.accounts import PasswordReentryForm, StaffDeskSignInForm


class StaffDeskSite(admin.AdminSite):
    login_form = StaffDeskSignInForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(
            super().has_permission(request)
            and page_session_refusal(user) is None
            and second_factor_verified(user)
        )

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path("reauth/", self.admin_view(self.reauth_view), name="reauth"),
            *super().get_urls(),
        ]

    def reauth_view(self, request: HttpRequest) -> HttpResponse:
        """The password again, for a money decision; failures count towards the lockout like
        any sign-in (the same `authenticate`, so django-axes sees them)."""
        user: Any = request.user
        wanted = request.POST.get("next") or request.GET.get("next") or ""
        next_url = (
            wanted
            if wanted
            and url_has_allowed_host_and_scheme(
                wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            )
            else reverse("admin:index", current_app=self.name)
        )
        form = PasswordReentryForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            again = authenticate(
                request,
                username=user.get_username(),
                password=form.cleaned_data["password"],
            )
            if again is not None and again.pk == user.pk:
                signin_mark(request)
                security_event("reauthenticated", request=request)
                return HttpResponseRedirect(next_url)
            form.add_error("password", "That is not your password.")
        context = {
            **self.each_context(request),
            "title": "Confirm your password",
            "form": form,
            "next": next_url,
            "max_age_minutes": int(settings.REAUTH_MAX_AGE.total_seconds() // 60),
        }
        return TemplateResponse(request, "admin/reauth.html", context)
