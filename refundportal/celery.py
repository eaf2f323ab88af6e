"""The Celery application: `celery -A refundportal worker` / `beat`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refundportal.settings.base")

app = Celery("refundportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
