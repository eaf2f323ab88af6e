"""Pages of the orders app, and sign in / sign out / password reset (Django's auth views)."""

from django.urls import URLPattern, URLResolver, include, path

from . import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    # login, logout, password_change…, password_reset… (templates in templates/registration/)
    path("accounts/", include("django.contrib.auth.urls")),
    path("seller/policy/", views.seller_policy, name="seller-policy"),
    path("sellers/<slug:slug>/", views.seller_public, name="seller-public"),
]
