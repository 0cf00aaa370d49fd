"""Exact money (SPEC §1).

Amounts travel as decimal strings, are checked against the currency's ISO 4217 minor units (from the
maintained `iso4217` package) and are stored and summed as integers of minor units, so no float and
no silent rounding exist anywhere. Integer sums that outgrow 64 bits fail loudly in both databases.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from iso4217 import Currency

from app.core import errors
from app.core.errors import DomainError

# The largest amount one transfer may carry, in minor units: 10^15 (ten trillion USD). Batch and
# participant totals are 64-bit integers (9.2e18), so thousands of maximal transfers fit in one
# account before the database refuses the sum; it never wraps.
MAX_TRANSFER_MINOR = 10**15

_DECIMAL = re.compile(r"^-?(0|[1-9]\d{0,29})(\.\d{1,18})?$")


@lru_cache(maxsize=512)
def currency_scale(code: str) -> int:
    """ISO 4217 minor units of a currency; DomainError for unknown codes and units-less codes (XAU)."""
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise DomainError(errors.UNKNOWN_CURRENCY, f"{code!r} is not an ISO 4217 currency code")
    try:
        exponent = Currency(code).exponent
    except ValueError:
        raise DomainError(errors.UNKNOWN_CURRENCY, f"unknown currency {code}") from None
    if exponent is None:
        raise DomainError(errors.UNKNOWN_CURRENCY, f"{code} has no minor unit and cannot be settled")
    return int(exponent)


def is_currency(code: str) -> bool:
    try:
        currency_scale(code)
    except DomainError:
        return False
    return True


def parse_decimal(text: str) -> Decimal:
    """The wire form of an amount: plain decimal notation, no exponent, no spaces, no float."""
    if not isinstance(text, str) or not _DECIMAL.match(text):
        raise DomainError(errors.VALIDATION, f"{text!r} is not a decimal amount like \"1250.50\"")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes this
        raise DomainError(errors.VALIDATION, f"{text!r} is not a decimal amount") from None


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact conversion to minor units; refuses more decimals than the currency has and huge values."""
    scale = currency_scale(currency)
    scaled = amount.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise DomainError(
            errors.AMOUNT_SCALE, f"{amount} has more than {scale} decimal place(s) allowed for {currency}"
        )
    minor = int(scaled)
    if abs(minor) > MAX_TRANSFER_MINOR:
        raise DomainError(
            errors.AMOUNT_OUT_OF_RANGE,
            f"{amount} {currency} is beyond the supported range ({format_minor(MAX_TRANSFER_MINOR, currency)})",
        )
    return minor


def positive_minor(amount: Decimal, currency: str) -> int:
    minor = to_minor(amount, currency)
    if minor <= 0:
        raise DomainError(errors.AMOUNT_NOT_POSITIVE, f"amount must be positive, got {amount}")
    return minor


def parse_positive_minor(text: str, currency: str) -> int:
    """positive_minor(parse_decimal(text), currency) in string and integer arithmetic: a call of 1,000 transfers
    parses 1,000 amounts, and Decimal's scaling costs most of it. Only a valid amount is computed here; anything
    else goes through the Decimal functions above, which refuse it with their codes and messages."""
    match = _DECIMAL.match(text) if isinstance(text, str) else None
    if match is None or text[0] == "-":
        return positive_minor(parse_decimal(text), currency)
    scale = currency_scale(currency)
    whole, fraction = match.group(1), (match.group(2) or ".")[1:]
    if len(fraction) > scale:
        if fraction[scale:].strip("0"):  # more decimals than the currency has
            return positive_minor(parse_decimal(text), currency)
        fraction = fraction[:scale]
    minor = int(whole + fraction.ljust(scale, "0"))
    if minor <= 0 or minor > MAX_TRANSFER_MINOR:
        return positive_minor(parse_decimal(text), currency)
    return minor


def format_minor(minor: int, currency: str) -> str:
    """Minor units back to the wire: exactly the currency's decimals, e.g. 125050 USD -> "1250.50"."""
    scale = currency_scale(currency)
    sign = "-" if minor < 0 else ""
    digits = str(abs(int(minor)))
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"
