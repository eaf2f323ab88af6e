"""Periodic work of the orders app (beat schedule: refundportal/settings/base.py)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone


@shared_task(acks_late=True, reject_on_worker_lost=True)
def idempotency_keys_expire() -> int:
    from orders.services import idempotency_keys_expire as expire

    return expire(now=timezone.now())
