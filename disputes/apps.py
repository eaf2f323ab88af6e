from django.apps import AppConfig


class DisputesConfig(AppConfig):
    name = "disputes"

    def ready(self) -> None:
        from payouts import hooks

        from .services import dispute_close_for_chargeback

        # After refunds' own callback: lock order is order, case, dispute.
        if dispute_close_for_chargeback not in hooks.chargeback_lost:
            hooks.chargeback_lost.append(dispute_close_for_chargeback)
