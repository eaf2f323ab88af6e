from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    verbose_name = "Payouts"

    def ready(self) -> None:
        from orders import hooks

        from .rules import chargeback_open_holds

        if chargeback_open_holds not in hooks.cancel_holds:
            hooks.cancel_holds.append(chargeback_open_holds)
