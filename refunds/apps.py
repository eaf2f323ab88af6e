from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"

    def ready(self) -> None:
        from orders import hooks
        from payouts import hooks as payout_hooks

        from .rules import refund_open_case_holds
        from .services import refund_mark_paid

        payout_hooks.payout_succeeded["refund"] = refund_mark_paid
        hooks.cancel_holds.append(refund_open_case_holds)
