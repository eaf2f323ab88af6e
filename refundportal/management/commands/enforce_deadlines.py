from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from refundportal.deadlines import enforce_all


class Command(BaseCommand):
    help = "Run one sweep of every window (the beat task runs the same code). Safe to run twice."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        moved = enforce_all(batch_size=options["batch_size"])
        for name, count in moved.items():
            self.stdout.write(f"{name}: {count}")
        self.stdout.write(self.style.SUCCESS(f"moved {sum(moved.values())} in total"))
