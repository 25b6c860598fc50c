from __future__ import annotations

from decimal import Decimal

import pytest

from streams.money import MoneyError, decimal_amount, format_minor, minor_units


def test_amounts_are_read_as_the_decimal_they_are_written_as() -> None:
    assert decimal_amount(899.1) == Decimal("899.1")
    assert decimal_amount(0.1) + decimal_amount(0.2) == Decimal("0.3")
    assert decimal_amount(150) == Decimal(150)
    assert decimal_amount("12.50") == Decimal("12.50")


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}, "abc", "NaN", "Infinity"])
def test_non_numbers_are_refused(bad: object) -> None:
    with pytest.raises(MoneyError):
        decimal_amount(bad)


def test_minor_units_and_back() -> None:
    assert minor_units(Decimal("0.125"), "USD") == 12  # half-even
    assert minor_units(Decimal("0.135"), "USD") == 14
    assert format_minor(1234, "USD") == "12.34"
    assert format_minor(1234, "JPY") == "1234"
    assert format_minor(1234, "KWD") == "1.234"
    assert format_minor(5, "EUR") == "0.05"
