"""Money: Decimal plus an ISO 4217 currency, checked against the currency's minor unit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

MONEY_MAX_DIGITS = 15
# Enough for the three-decimal currencies (KWD, BHD); each amount is checked against its own.
MONEY_DECIMAL_PLACES = 3

# Codes that are not money a shop can be paid in (test, metals, no currency, fund units).
_NOT_TRADABLE = {
    "XXX",
    "XTS",
    "XAU",
    "XAG",
    "XPD",
    "XPT",
    "XDR",
    "XSU",
    "XUA",
    "XBA",
    "XBB",
    "XBC",
    "XBD",
}


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    return frozenset(c for c in list_currencies() if c not in _NOT_TRADABLE and len(c) == 3)


def is_currency(code: str) -> bool:
    return code in currencies()


@lru_cache(maxsize=512)
def minor_unit(currency: str) -> int:
    return int(get_currency_precision(currency))


class MoneyError(ValueError):
    pass


def parse_amount(value: object, currency: str, *, allow_zero: bool = False) -> Decimal:
    """A positive Decimal with no more decimals than the currency has; never via float."""
    if isinstance(value, float):
        raise MoneyError("Send amounts as strings, not floating-point numbers.")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"{value!r} is not an amount.") from exc
    if not amount.is_finite():
        raise MoneyError(f"{value!r} is not an amount.")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError("The amount must be more than zero.")
    places = minor_unit(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise MoneyError(f"{currency} amounts have at most {places} decimal places.")
    if amount.adjusted() >= MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES:
        raise MoneyError("The amount is too large.")
    return amount


@lru_cache(maxsize=512)
def _exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def parse_amount_field(value: object, currency: str, *, field: str = "amount") -> Decimal:
    """`parse_amount` for services: a refusal becomes that field's validation error, which the
    API renders in its envelope and the pages show next to the field."""
    from kernel.errors import ValidationFailed

    try:
        return parse_amount(value, currency)
    except MoneyError as exc:
        raise ValidationFailed(str(exc), fields={field: [str(exc)]}) from exc


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_exponent(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's string form: "59.90", "1200" for JPY."""
    return f"{quantize(amount, currency):f}"


def format_optional_amount(amount: Decimal | None, currency: str) -> str | None:
    """`format_amount` for amounts that may not exist yet (an offer, an approval): null in JSON."""
    return None if amount is None else format_amount(amount, currency)


def format_money(amount: Decimal, currency: str) -> str:
    """The human form, for pages, the admin and emails: "1,234.50 USD", "1,200 JPY".

    Thousands are grouped so a reader cannot misread a large amount; machine forms (the API,
    form values) use `format_amount`, which never groups.
    """
    return f"{quantize(amount, currency):,f} {currency}".strip()
