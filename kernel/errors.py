"""Domain errors: each has a code, an HTTP status and a message a person can read (docs/api.md,
Errors). The API renders them with `api.errors.api_exception_handler`; pages as form errors."""

from __future__ import annotations


class DomainError(Exception):
    code = "validation_error"
    status_code = 400

    def __init__(
        self, message: str, *, fields: dict[str, list[str]] | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        if code:
            self.code = code


class ValidationFailed(DomainError):
    code = "validation_error"


class WindowClosed(DomainError):
    code = "window_closed"


class WindowNotOpen(DomainError):
    code = "window_not_open"


class AmountExceedsRefundable(DomainError):
    code = "amount_exceeds_refundable"


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = 409


class Duplicate(DomainError):
    code = "duplicate"
    status_code = 409


class NotAllowed(DomainError):
    code = "permission_denied"
    status_code = 403


class IdempotencyKeyInUse(DomainError):
    code = "idempotency_key_in_use"
    status_code = 409


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status_code = 422
