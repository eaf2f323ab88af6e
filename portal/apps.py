from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Every HTML page of the portal, at the top of the app graph (docs/architecture.md)."""

    name = "portal"

    def ready(self) -> None:
        # The security log of signing in and the session's sign-in instant (portal/accounts.py).
        from .accounts import connect_receivers

        connect_receivers()
