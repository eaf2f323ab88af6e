from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"

    def ready(self) -> None:
        from orders import hooks
        from payouts import hooks as payout_hooks

        from .services import refund_mark_paid, refund_open_case_guard

        payout_hooks.payout_succeeded["refund"] = refund_mark_paid
        hooks.cancel_guards.append(refund_open_case_guard)
