from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        # Domain apps never import notifications; they announce committed events through this
        # explicit hook instead (no signals).
        from orders import hooks

        from .tasks import queue_dispatch

        if queue_dispatch not in hooks.events_written:
            hooks.events_written.append(queue_dispatch)
