from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"

    def ready(self) -> None:
        from orders import hooks
        from payouts import hooks as payout_hooks

        from .rules import refund_open_case_holds
        from .services import refund_close_for_chargeback, refund_mark_paid

        payout_hooks.payout_succeeded["refund"] = refund_mark_paid
        if refund_close_for_chargeback not in payout_hooks.chargeback_lost:
            payout_hooks.chargeback_lost.append(refund_close_for_chargeback)
        hooks.cancel_holds.append(refund_open_case_holds)
