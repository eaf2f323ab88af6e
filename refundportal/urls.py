from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api.errors import envelope_response
from payouts.webhooks import stripe_webhook

api_v1 = [
    path("", include("orders.api")),
    path("", include("orders.api_tokens")),
    path("", include("payouts.api")),
    path("", include("refunds.api")),
    path("", include("disputes.api")),
    path("", include("notifications.api")),
]


def api_not_found(request: HttpRequest) -> JsonResponse:
    """An unknown API path answers in the API's envelope, not with an HTML page."""
    return envelope_response("not_found", "No such API endpoint.", 404)


# Errors Django answers itself: the envelope under /api/, its own pages elsewhere (api/errors.py).
handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.page_not_found"
handler500 = "api.errors.server_error"


# Every page 403 is logged as an access refused (docs/architecture.md, Accounts and security).
handler403 = "portal.views.accounts.permission_denied"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves the page's script from its own URL (`?script`): no inline script
    # under the Content-Security-Policy (docs/architecture.md, Browser policies).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    # Whatever PAYMENT_GATEWAY is: Stripe may still report refunds made before a switch.
    path("webhooks/stripe/", stripe_webhook, name="stripe-webhook"),
    re_path(r"^api/", api_not_found, name="api-not-found"),
    path("", include("portal.urls")),
    path("", include("refunds.evidence_urls")),
]
