"""The portal's urls plus the one-query baseline (bench only)."""

from django.urls import include, path

urlpatterns = [
    path("", include("bench.baseline_urls")),
    path("", include("refundportal.urls")),
]
