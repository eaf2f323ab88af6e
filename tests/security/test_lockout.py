"""Failed sign-ins lock one username at one address, never a whole proxy's worth of users
(docs/architecture.md, Accounts and security).

Behind the TLS proxy every request arrives from the proxy's address. Locking by address alone
let five wrong passwords for any username lock every user out of the portal and the admin, and
reading `X-Forwarded-For` blindly let a guesser pick a fresh address for every try.
"""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from api.throttling import PageThrottle, PostRateThrottle
from tests.orders.factories import UserFactory

PASSWORD = "correct horse battery staple"
A, B, PROXY = "198.51.100.7", "203.0.113.9", "192.0.2.1"

# (login path, whether its accounts must be staff): the portal's sign-in page and the admin's.
LOGIN_PAGES = [
    pytest.param("/accounts/login/", False, id="portal"),
    pytest.param("/admin/login/", True, id="admin"),
]


def _sign_in(path: str, email: str, password: str, **meta: str) -> int:
    client = Client(**meta)
    return client.post(path, {"username": email, "password": password}).status_code


def _fail_five_times(path: str, email: str, **meta: str) -> None:
    answers = [_sign_in(path, email, "wrong password", **meta) for _ in range(5)]
    # the form again four times; the fifth failure locks (AXES_FAILURE_LIMIT)
    assert answers == [200, 200, 200, 200, 429]


@pytest.fixture
def people(db):
    def make(staff: bool) -> tuple[str, str]:
        x = UserFactory(email="x@example.com", is_staff=staff)
        y = UserFactory(email="y@example.com", is_staff=staff)
        return x.email, y.email

    return make


@pytest.mark.parametrize(("path", "staff"), LOGIN_PAGES)
def test_wrong_passwords_for_one_user_lock_that_user_at_that_address(people, path, staff):
    # given five wrong passwords for X from address A
    x, _ = people(staff)
    _fail_five_times(path, x, REMOTE_ADDR=A)

    # when X tries again from A, even with the right password, then it is locked out
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=A) == 429


@pytest.mark.parametrize(("path", "staff"), LOGIN_PAGES)
def test_wrong_passwords_for_one_user_never_stop_another_user_at_that_address(people, path, staff):
    # given five wrong passwords for X from address A (the proxy's, say)
    x, y = people(staff)
    _fail_five_times(path, x, REMOTE_ADDR=A)

    # when Y signs in from the same address, then Y gets in
    assert _sign_in(path, y, PASSWORD, REMOTE_ADDR=A) == 302


@pytest.mark.parametrize(("path", "staff"), LOGIN_PAGES)
def test_wrong_passwords_from_one_address_never_stop_the_user_at_another(people, path, staff):
    # given five wrong passwords for X from address A
    x, _ = people(staff)
    _fail_five_times(path, x, REMOTE_ADDR=A)

    # when X signs in from address B, then X gets in
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=B) == 302


@pytest.mark.parametrize(("path", "staff"), LOGIN_PAGES)
def test_a_forged_forwarded_for_changes_nothing_when_no_proxy_is_trusted(
    people, path, staff, settings
):
    # given no trusted proxy, and five wrong passwords for X from A, each claiming to come
    # from B through X-Forwarded-For
    settings.TRUSTED_PROXY_COUNT = 0
    x, _ = people(staff)
    _fail_five_times(path, x, REMOTE_ADDR=A, HTTP_X_FORWARDED_FOR=B)

    # then a new forged address does not get the guesser out of the lock
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=A, HTTP_X_FORWARDED_FOR="192.0.2.200") == 429
    # and the address it claimed to be was not charged: X still signs in from the real B
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=B) == 302


@pytest.mark.parametrize(("path", "staff"), LOGIN_PAGES)
def test_two_clients_behind_the_trusted_proxy_are_told_apart(people, path, staff, settings):
    # given one trusted proxy, through which every request arrives
    settings.TRUSTED_PROXY_COUNT = 1
    x, _ = people(staff)

    # when five wrong passwords for X come from the client at A
    _fail_five_times(path, x, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=A)

    # then X at A is locked out, and X at B, behind the same proxy, signs in
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=A) == 429
    assert _sign_in(path, x, PASSWORD, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=B) == 302


@pytest.mark.parametrize("throttle", [PostRateThrottle(), PageThrottle("messages")])
def test_throttles_tell_clients_apart_by_the_trusted_address(throttle, settings):
    # given a request from A with a forged X-Forwarded-For
    request = RequestFactory().post("/", REMOTE_ADDR=A, HTTP_X_FORWARDED_FOR=B)

    # then with no trusted proxy the throttle counts it against A
    settings.TRUSTED_PROXY_COUNT = 0
    assert throttle.get_ident(request) == A
    # and with one, against the client the proxy saw
    settings.TRUSTED_PROXY_COUNT = 1
    assert throttle.get_ident(request) == B
