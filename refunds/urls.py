"""Pages about orders and their refund cases (served by `refunds.views`, see its docstring)."""

from django.urls import URLPattern, URLResolver, path

from . import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("orders/", views.order_list, name="order-list"),
    path("orders/<str:number>/", views.order_detail, name="order-detail"),
    path("orders/<str:number>/messages/", views.order_message, name="order-message"),
    path("orders/<str:number>/cancel/", views.order_cancel, name="order-cancel"),
    path(
        "orders/<str:number>/cancel-out-of-stock/",
        views.order_cancel_oos,
        name="order-cancel-out-of-stock",
    ),
    path("orders/<str:number>/invoice/", views.order_invoice, name="order-invoice"),
    # The refund request: step 1 is choosing the order on My orders.
    path("orders/<str:number>/refund/", views.refund_start, name="refund-start"),
    path("orders/<str:number>/refund/details/", views.refund_details, name="refund-details"),
    path("orders/<str:number>/refund/review/", views.refund_review, name="refund-review"),
    path("refunds/<uuid:case_id>/", views.case_detail, name="case-detail"),
    path("refunds/<uuid:case_id>/messages/", views.case_message, name="case-message"),
    path("refunds/<uuid:case_id>/evidence/", views.case_evidence, name="case-evidence"),
    path("refunds/<uuid:case_id>/slip/", views.case_slip, name="case-slip"),
    *(
        path(
            f"refunds/<uuid:case_id>/{action}/",
            views.case_action,
            {"action": action},
            name=f"case-{action}",
        )
        for action in views.CASE_ACTIONS
    ),
]
