"""Signing in to pages, the staff's second factor, and the page 403 (docs/architecture.md,
Accounts and security)."""

from __future__ import annotations

import logging
from base64 import b32encode
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django_otp.plugins.otp_totp.models import TOTPDevice

from kernel.security import security_event

from ..accounts import second_factor_url, second_factor_verified
from ..forms.accounts import SecondFactorForm, SignInForm


def _safe_next(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return resolve_url(settings.LOGIN_REDIRECT_URL)


class SignInView(LoginView):
    """Django's sign-in page with the service-account refusal; staff go on to their second
    factor before the page they asked for."""

    form_class = SignInForm

    def get_success_url(self) -> str:
        url = super().get_success_url()
        user = self.request.user
        if user.is_staff and not second_factor_verified(user):
            return second_factor_url(url)
        return url


@login_required
def second_factor(request: HttpRequest) -> HttpResponse:
    """Staff show a code from their TOTP device; a staff member without a confirmed device
    enrols here on first sign-in (the secret is shown once the password has been given)."""
    user: Any = request.user
    next_url = _safe_next(request)
    if not user.is_staff or second_factor_verified(user):
        return HttpResponseRedirect(next_url)
    device = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
    enrolling = device is None
    if device is None:
        device = TOTPDevice.objects.devices_for_user(user, confirmed=False).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = SecondFactorForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        # verify_token locks the device row, so one code cannot be used twice at once, and
        # counts failures (django-otp's back-off between attempts).
        verified = django_otp.verify_token(user, device.persistent_id, form.cleaned_data["code"])
        if verified is not None:
            if enrolling:
                verified.confirmed = True
                verified.save(update_fields=["confirmed"])
            django_otp.login(request, verified)
            security_event(
                "second_factor_enrolled" if enrolling else "second_factor_verified",
                request=request,
            )
            return HttpResponseRedirect(next_url)
        security_event("second_factor_failed", request=request, level=logging.WARNING)
        form.add_error(
            "code",
            "That code is not right or has expired. Wait for the next code and try again.",
        )
    context: dict[str, Any] = {"form": form, "next": next_url, "enrolling": enrolling}
    if enrolling:
        context["secret"] = b32encode(device.bin_key).decode()
        context["config_url"] = device.config_url
    return render(request, "registration/second_factor.html", context)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Every page 403 is logged once, here (handler403)."""
    security_event(
        "access_refused",
        request=request,
        level=logging.WARNING,
        path=request.path,
        status=403,
        method=request.method,
    )
    return defaults.permission_denied(request, exception)
