from __future__ import annotations

from datetime import datetime


def dispute_sweeps_run(*, now: datetime, batch_size: int | None = None) -> dict[str, int]:
    return {}
