from django.apps import AppConfig


class RefundportalConfig(AppConfig):
    name = "refundportal"
    verbose_name = "RefundPortal"
