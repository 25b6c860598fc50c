"""Money is never a float: Decimal in, integer minor units in tables, decimal strings out."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from streams.errors import StreamsError

__all__ = ["MoneyError", "decimal_amount", "format_minor", "minor_exponent", "minor_units"]

# ISO 4217 minor-unit exponents that differ from 2.
_EXPONENTS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    "CLF": 4,
    "UYW": 4,
}


class MoneyError(StreamsError, ValueError):
    pass


def minor_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def decimal_amount(value: object) -> Decimal:
    """An amount as the decimal it is written as: `Decimal(str(x))` of a parsed JSON number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise MoneyError(f"amount must be a number, got {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MoneyError(f"amount is not a number: {value!r}") from None
    if not amount.is_finite():
        raise MoneyError(f"amount is not finite: {value!r}")
    return amount


def minor_units(amount: Decimal, currency: str) -> int:
    """`amount` (major units) in integer minor units of `currency`, rounded half-even."""
    exponent = minor_exponent(currency)
    return int((amount.scaleb(exponent)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def format_minor(minor: int, currency: str) -> str:
    """Integer minor units as a decimal string with the currency's exponent: 1234 USD -> '12.34'."""
    exponent = minor_exponent(currency)
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))
