from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("orders.api")),
    path("", include("payouts.api")),
    path("", include("refunds.api")),
    path("", include("disputes.api")),
    path("", include("notifications.api")),
]


def api_not_found(request: HttpRequest) -> JsonResponse:
    """An unknown API path answers in the API's envelope, not with an HTML page."""
    return JsonResponse(
        {"error": {"code": "not_found", "message": "No such API endpoint."}}, status=404
    )


# Every page 403 is logged as an access refused (docs/architecture.md, Accounts and security).
handler403 = "portal.views.accounts.permission_denied"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    re_path(r"^api/", api_not_found, name="api-not-found"),
    path("", include("portal.urls")),
    path("", include("refunds.evidence_urls")),
]
