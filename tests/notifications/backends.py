"""Email backends for the delivery tests."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend


class FailingBackend(BaseEmailBackend):
    """An SMTP server that refuses every message."""

    calls = 0

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        type(self).calls += 1
        raise smtplib.SMTPException("451 4.3.0 Mail server temporarily rejected message")


class FailingForSome(BaseEmailBackend):
    """Refuses the addresses in `refused`, delivers the rest to the test outbox."""

    refused: set[str] = set()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        from django.core import mail

        for message in email_messages:
            if set(message.to) & self.refused:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"No such user")})
            mail.outbox.append(message)
        return len(email_messages)
