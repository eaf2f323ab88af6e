from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class RefundportalConfig(AppConfig):
    name = "refundportal"
    verbose_name = "RefundPortal"


class StaffDeskAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the staff desk's site (refundportal/admin_site.py) as `admin.site`,
    so every app's `@admin.register` lands on the site that demands a second factor."""

    default = False
    default_site = "refundportal.admin_site.StaffDeskSite"
