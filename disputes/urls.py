"""Dispute pages and the seller dashboard (served by `disputes.views`)."""

from django.urls import URLPattern, URLResolver, path

from . import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("refunds/<uuid:case_id>/dispute/", views.dispute_new, name="dispute-new"),
    path("disputes/<uuid:dispute_id>/", views.dispute_detail, name="dispute-detail"),
    path(
        "disputes/<uuid:dispute_id>/statement/", views.dispute_statement, name="dispute-statement"
    ),
    path("disputes/<uuid:dispute_id>/messages/", views.dispute_message, name="dispute-message"),
    path(
        "disputes/<uuid:dispute_id>/evidence/", views.dispute_evidence_add, name="dispute-evidence"
    ),
    path("disputes/<uuid:dispute_id>/withdraw/", views.dispute_withdraw, name="dispute-withdraw"),
    path("seller/", views.seller_dashboard, name="seller-dashboard"),
]
