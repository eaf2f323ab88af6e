"""Benchmark-only settings: production as deployed, plus the baseline view's urlconf.

Used by bench/pages.py only (`DJANGO_SETTINGS_MODULE=bench.settings`); everything else comes from
the environment exactly as in production.
"""

from __future__ import annotations

from pathlib import Path

from refundportal.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# collectstatic for the manifest storage goes here, not into the repository's staticfiles/.
STATIC_ROOT = Path(__file__).resolve().parent / "out" / "static"
