"""Every HTML page's URL. Paths and names are what bookmarks, emails and templates use: they do
not change when code moves."""

from django.urls import URLPattern, URLResolver, include, path

from refunds.rules import ROUTED_CASE_ACTIONS

from .views import accounts, disputes, notifications, pages, refunds

notification_patterns = [
    path("notifications/", notifications.notification_list, name="list"),
    path("notifications/read-all/", notifications.notification_read_all, name="read-all"),
    path("notifications/preview/", notifications.notification_preview, name="preview"),
    path(
        "notifications/preview/email/",
        notifications.notification_preview_email,
        name="preview-email",
    ),
    path("notifications/<uuid:public_id>/read/", notifications.notification_read, name="read"),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("", pages.home, name="home"),
    # Sign-in refuses service accounts and sends staff on to their second factor; logout,
    # password_change…, password_reset… are Django's (templates in templates/registration/).
    path("accounts/login/", accounts.SignInView.as_view(), name="login"),
    path("accounts/second-factor/", accounts.second_factor, name="second-factor"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("seller/policy/", pages.seller_policy, name="seller-policy"),
    path("sellers/<slug:slug>/", pages.seller_public, name="seller-public"),
    # My orders, an order, and the refund request (step 1 is choosing the order on My orders)
    path("orders/", refunds.order_list, name="order-list"),
    path("orders/<str:number>/", refunds.order_detail, name="order-detail"),
    path("orders/<str:number>/messages/", refunds.order_message, name="order-message"),
    path("orders/<str:number>/cancel/", refunds.order_cancel, name="order-cancel"),
    path(
        "orders/<str:number>/cancel-out-of-stock/",
        refunds.order_cancel_oos,
        name="order-cancel-out-of-stock",
    ),
    path("orders/<str:number>/invoice/", refunds.order_invoice, name="order-invoice"),
    path("orders/<str:number>/refund/", refunds.refund_start, name="refund-start"),
    path("orders/<str:number>/refund/details/", refunds.refund_details, name="refund-details"),
    path("orders/<str:number>/refund/review/", refunds.refund_review, name="refund-review"),
    # a refund case
    path("refunds/<uuid:case_id>/", refunds.case_detail, name="case-detail"),
    path("refunds/<uuid:case_id>/messages/", refunds.case_message, name="case-message"),
    path("refunds/<uuid:case_id>/evidence/", refunds.case_evidence, name="case-evidence"),
    path("refunds/<uuid:case_id>/slip/", refunds.case_slip, name="case-slip"),
    *(
        path(
            f"refunds/<uuid:case_id>/{action.name}/",
            refunds.case_action,
            {"action": action.name},
            name=f"case-{action.name}",
        )
        for action in ROUTED_CASE_ACTIONS
    ),
    # a dispute, and the seller's dashboard
    path("refunds/<uuid:case_id>/dispute/", disputes.dispute_new, name="dispute-new"),
    path("disputes/<uuid:dispute_id>/", disputes.dispute_detail, name="dispute-detail"),
    path(
        "disputes/<uuid:dispute_id>/statement/",
        disputes.dispute_statement,
        name="dispute-statement",
    ),
    path("disputes/<uuid:dispute_id>/messages/", disputes.dispute_message, name="dispute-message"),
    path(
        "disputes/<uuid:dispute_id>/evidence/",
        disputes.dispute_evidence_add,
        name="dispute-evidence",
    ),
    path(
        "disputes/<uuid:dispute_id>/withdraw/", disputes.dispute_withdraw, name="dispute-withdraw"
    ),
    path("seller/", disputes.seller_dashboard, name="seller-dashboard"),
    path("", include((notification_patterns, "notifications"))),
]
