"""Issue an API key for an account, typically the marketplace's service account (docs/api.md,
Authentication). The key is printed once, on stdout alone, so it can be piped into a secret
store; it is never stored or logged."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.errors import DomainError
from orders.models import ApiScope, User
from orders.rules import api_scopes
from orders.services import api_token_issue


class Command(BaseCommand):
    help = (
        "Issue an API key, e.g. api_token_issue --user feed@marketplace.example "
        "--scopes marketplace,read --days 90. Prints the key once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The account's email address.")
        parser.add_argument(
            "--scopes",
            help=f"Comma-separated, from {', '.join(ApiScope.values)} (default: the account's "
            "full rights).",
        )
        parser.add_argument("--days", type=int, help="Lifetime in days (default API_TOKEN_DAYS).")
        parser.add_argument("--name", default="", help="What the key is for.")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["user"].strip().lower()
        try:
            user = User.objects.get(email=email)
        except User.DoesNotExist as exc:
            raise CommandError(f"No account {email!r}.") from exc
        if options["scopes"]:
            scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        else:
            scopes = sorted(api_scopes(user=user, token=None))
        try:
            issued = api_token_issue(
                user=user,
                scopes=scopes,
                name=options["name"] or "issued by an operator",
                days=options["days"],
                via_token=None,
                actor=None,
                how="command",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        token = issued.token
        self.stderr.write(
            f"Issued key {token.prefix}… for {user.email}, scopes {','.join(token.scopes)}, "
            f"expires {token.expires_at.isoformat()}. It is shown once:"
        )
        self.stdout.write(issued.key)
