from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Every HTML page of the portal, at the top of the app graph (docs/architecture.md)."""

    name = "portal"
