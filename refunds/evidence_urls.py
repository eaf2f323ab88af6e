"""The permission-checked download of evidence files (outside /api/v1/, outside the static root)."""

from django.urls import path

from .evidence import evidence_download

app_name = "refunds_files"

urlpatterns = [
    path("files/evidence/<uuid:evidence_id>/", evidence_download, name="evidence-download"),
]
