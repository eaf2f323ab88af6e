"""Staff show a TOTP code for pages and the admin, never for the API; their sessions end after
30 idle minutes; marketplace service accounts get no page session (docs/architecture.md,
Accounts and security)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import password_only_login
from tests.orders.factories import UserFactory

PASSWORD = "correct horse battery staple"


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def sign_in(client: Client, path: str, user, next_url: str = "") -> object:  # type: ignore[no-untyped-def]
    data = {"username": user.email, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(path, data)


# --- staff: the second factor -------------------------------------------------------------------


def test_staff_without_a_device_enrol_on_first_sign_in(client, staff):
    # given a staff member with no device, who signs in with the password
    response = sign_in(client, "/accounts/login/", staff, next_url="/admin/")

    # then the next page is the second factor, which shows a fresh secret to add to an app
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/")
    page = client.get(response["Location"])
    device = TOTPDevice.objects.get(user=staff)
    assert not device.confirmed
    assert page.context["enrolling"] is True
    assert page.context["secret"] and page.context["secret"].encode() in page.content
    assert b"otpauth://totp/" in page.content
    # and the admin stays shut until a code is shown
    assert client.get("/admin/")["Location"].startswith("/accounts/second-factor/")

    # when a wrong code is given, then it is refused and nothing opens
    wrong = client.post("/accounts/second-factor/", {"code": "000000", "next": "/admin/"})
    assert wrong.status_code == 200 and wrong.context["form"].errors["code"]
    assert client.get("/admin/").status_code == 302

    # when the app's code is given (past the back-off of the wrong one)
    device.refresh_from_db()
    device.throttle_reset()
    done = client.post("/accounts/second-factor/", {"code": code_for(device), "next": "/admin/"})

    # then the device is confirmed and the admin opens
    assert done.status_code == 302 and done["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200


def test_staff_with_a_device_give_its_code_and_see_no_secret(client, staff):
    # given a staff member whose device is confirmed
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)

    # when they sign in to the admin with the password
    response = sign_in(client, "/admin/login/", staff, next_url="/admin/")
    assert response.status_code == 302
    to_factor = client.get(response["Location"])

    # then they are asked for the code, with no secret shown
    assert to_factor.status_code == 302
    page = client.get(to_factor["Location"])
    assert page.context["enrolling"] is False and "secret" not in page.context
    # and with the code the admin opens
    done = client.post("/accounts/second-factor/", {"code": code_for(device), "next": "/admin/"})
    assert done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("path", ["/admin/", "/orders/", "/notifications/"])
def test_a_password_only_staff_session_gets_no_page_and_no_admin(client, staff, path):
    # given a staff session that has not shown a code
    password_only_login(client, staff)

    # when it opens a page or the admin, then it is sent to the second factor first
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/second-factor/?next=")


def test_the_api_never_asks_staff_for_a_second_factor(client, staff):
    password_only_login(client, staff)

    assert client.get("/api/v1/orders/").status_code == 200


def test_other_accounts_sign_in_with_the_password_alone(client, buyer):
    response = sign_in(client, "/accounts/login/", buyer, next_url="/orders/")

    assert response["Location"] == "/orders/"
    assert client.get("/orders/").status_code == 200
    assert not TOTPDevice.objects.filter(user=buyer).exists()


# --- marketplace service accounts ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_the_sign_in_pages_refuse_a_service_account_with_a_clear_message(db, client, path):
    # given the marketplace's service account (staff as well, the worst case)
    account = UserFactory(email="feed@marketplace.example", is_marketplace=True, is_staff=True)

    # when it signs in with its right password
    response = sign_in(client, path, account)

    # then the page says why, and no session is made
    assert response.status_code == 200
    assert b"marketplace service account" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("path", ["/", "/orders/", "/admin/", "/admin/orders/order/"])
def test_a_service_account_session_gets_no_page_and_no_admin(client, marketplace, path):
    # given a session the service account holds anyway
    marketplace.is_staff = True  # even as staff
    marketplace.save(update_fields=["is_staff"])
    client.force_login(marketplace)

    # when it opens a page or the admin, then it is refused with the reason
    response = client.get(path)
    assert response.status_code == 403
    assert b"marketplace service account" in response.content


def test_a_service_account_keeps_the_api(client, marketplace):
    client.force_login(marketplace)

    assert client.get("/api/v1/orders/").status_code == 200


# --- staff idle timeout -------------------------------------------------------------------------


def test_a_staff_session_ends_after_30_idle_minutes(client, staff):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(staff)
        assert client.get("/admin/").status_code == 200
    # 29:59 after the last request the session is alive, and that request counts as activity
    with time_machine.travel(start + timedelta(minutes=29, seconds=59), tick=False):
        assert client.get("/admin/").status_code == 200
    last = start + timedelta(minutes=29, seconds=59)
    # 30:01 after it, the session is over: back to a sign-in page
    with time_machine.travel(last + timedelta(minutes=30, seconds=1), tick=False):
        response = client.get("/admin/")
        assert response.status_code == 302
        assert "/login/?next=" in response["Location"]
        assert "_auth_user_id" not in client.session
        assert client.get("/api/v1/orders/").status_code == 401


def test_a_staff_api_session_ends_after_30_idle_minutes_too(client, staff):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(staff)
        assert client.get("/api/v1/orders/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=30, seconds=1), tick=False):
        assert client.get("/api/v1/orders/").status_code == 401


def test_other_sessions_keep_the_usual_policy(client, buyer):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.force_login(buyer)
        assert client.get("/orders/").status_code == 200
    with time_machine.travel(start + timedelta(hours=3), tick=False):
        assert client.get("/orders/").status_code == 200


def test_the_admin_site_itself_refuses_an_unverified_or_service_session(rf, staff, marketplace):
    # given requests that never went through the page middleware
    from django.contrib import admin
    from django.contrib.auth.models import AnonymousUser

    def request_as(user, verified: bool):  # type: ignore[no-untyped-def]
        request = rf.get("/admin/")
        user.is_verified = lambda: verified
        request.user = user
        return request

    # then the desk's site lets in only verified staff that are not a service account
    assert admin.site.has_permission(request_as(staff, verified=True))
    assert not admin.site.has_permission(request_as(staff, verified=False))
    marketplace.is_staff = True
    assert not admin.site.has_permission(request_as(marketplace, verified=True))
    anonymous = rf.get("/admin/")
    anonymous.user = AnonymousUser()
    assert not admin.site.has_permission(anonymous)
