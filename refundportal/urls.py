from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("orders.api")),
    path("", include("refunds.api")),
    path("", include("disputes.api")),
    path("", include("notifications.api")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("", include("orders.urls")),
    path("", include("refunds.urls")),
    path("", include("refunds.evidence_urls")),
    path("", include("disputes.urls")),
    path("", include("notifications.urls")),
]
