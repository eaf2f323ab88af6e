"""Signing in: the password, the staff's second factor, and the desk's password re-entry
(docs/architecture.md, Accounts and security)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from kernel.security import security_event

from ..accounts import page_session_refusal
from .base import PortalForm


class RefusesServiceAccounts:
    """A password sign-in to pages refuses the marketplace's service account, with a message
    saying where it belongs; it is refused after its password was checked, so the message tells
    a guesser nothing about an account it does not already hold."""

    request: Any

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)  # type: ignore[misc]
        refusal = page_session_refusal(user)
        if refusal:
            security_event(
                "access_refused", request=self.request, actor=user, reason="service_account_page"
            )
            raise ValidationError(refusal, code="service_account")


class SignInForm(RefusesServiceAccounts, AuthenticationForm):
    pass


class StaffDeskSignInForm(RefusesServiceAccounts, AdminAuthenticationForm):
    pass


class SecondFactorForm(PortalForm):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=8,
        min_length=6,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not code.isdigit():
            raise ValidationError("The code is the 6 digits your app shows.", code="not_digits")
        return code


class PasswordReentryForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )
