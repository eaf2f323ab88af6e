"""Money: Decimal plus an ISO 4217 currency, checked against the currency's minor unit."""

from __future__ import annotations

import re
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


# The one grammar of an amount (docs/rules.md, Money): ASCII digits, then optionally a point and
# at most the currency's number of decimals. `[0-9]`, not `\d`: `\d` would take full-width and
# Devanagari digits, which `Decimal()` reads as well. No sign, exponent, grouping or underscore.
AMOUNT_RE = re.compile(r"(?P<units>[0-9]+)(?:\.(?P<fraction>[0-9]+))?")
_MAX_UNITS = MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES
_NOT_POSITIVE = "The amount must be more than zero."
_TOO_LARGE = "The amount is too large."


class DecimalLiteral(Decimal):
    """A JSON number as written: the exact `Decimal` plus the text it was written with, so the
    amount grammar judges `1e2` or `1.00E+2` as written, not as the value they spell."""

    literal: str

    def __new__(cls, literal: str) -> DecimalLiteral:
        try:
            number = super().__new__(cls, literal)
        except InvalidOperation as exc:  # an exponent beyond what Decimal holds
            raise ValueError("a number out of range") from exc
        number.literal = literal
        return number


def _not_an_amount(currency: str | None = None) -> MoneyError:
    example = format_amount(Decimal("1234.5"), currency) if currency else "59.90"
    return MoneyError(f"This is not an amount; write it with digits and a point, like {example}.")


def amount_text(value: object) -> str:
    """The text an amount arrived as: a string as sent, a JSON number as written."""
    if isinstance(value, DecimalLiteral):
        return value.literal
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise MoneyError("Send amounts as strings, not floating-point numbers.")
    raise _not_an_amount()


def _scale_refusal(currency: str, places: int) -> MoneyError:
    return MoneyError(f"{currency} amounts have at most {places} decimal places.")


def parse_amount(value: object, currency: str, *, allow_zero: bool = False) -> Decimal:
    """A positive Decimal written in the amount grammar with no more decimals than the currency
    has; never via float, and refused (`MoneyError`) rather than rounded."""
    if isinstance(value, Decimal) and not isinstance(value, DecimalLiteral):
        return _checked_decimal(value, currency, allow_zero=allow_zero)
    text = amount_text(value)
    negative = text.startswith("-")
    match = AMOUNT_RE.fullmatch(text[1:] if negative else text)
    if match is None:
        raise _not_an_amount(currency)
    if negative:
        raise MoneyError(_NOT_POSITIVE)
    places = minor_unit(currency)
    if len(match["fraction"] or "") > places:
        raise _scale_refusal(currency, places)
    # Judged on the digits, before any Decimal arithmetic can overflow on a huge number.
    if len(match["units"].lstrip("0")) > _MAX_UNITS:
        raise MoneyError(_TOO_LARGE)
    amount = Decimal(text)
    if amount == 0 and not allow_zero:
        raise MoneyError(_NOT_POSITIVE)
    return amount


def _checked_decimal(amount: Decimal, currency: str, *, allow_zero: bool) -> Decimal:
    # A Decimal the code computed (an items' value, a stored amount), not text from outside: it is
    # judged by its value, so the stored "40.000" of a USD order is the amount 40.00.
    if not amount.is_finite():
        raise _not_an_amount(currency)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError(_NOT_POSITIVE)
    if amount.adjusted() >= _MAX_UNITS:  # before quantize, which could not hold the digits
        raise MoneyError(_TOO_LARGE)
    if amount != amount.quantize(_exponent(currency)):
        raise _scale_refusal(currency, minor_unit(currency))
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
