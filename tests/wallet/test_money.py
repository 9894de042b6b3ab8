"""The money module: every rejection case and exact round trips."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wallet_service.errors import InvalidArgument
from wallet_service.money import DEFAULT_CURRENCIES, CurrencyBook, format_minor, major_to_minor

BOOK = CurrencyBook.of(DEFAULT_CURRENCIES, Decimal("1000000000"))


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("0.01", "USD", 1),
        ("12.34", "USD", 1234),
        ("12.3", "USD", 1230),
        ("12", "USD", 1200),
        ("1000000000", "USD", 100_000_000_000),
        ("1", "JPY", 1),
        ("15000", "JPY", 15000),
        ("0.001", "KWD", 1),
        ("12.345", "KWD", 12345),
        ("0.1", "KWD", 100),
    ],
)
def test_parses_exactly(text: str, currency: str, minor: int) -> None:
    assert BOOK.parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1, "USD", "0.01"),
        (123456, "USD", "1234.56"),
        (7, "JPY", "7"),
        (1, "KWD", "0.001"),
        (12345, "KWD", "12.345"),
        (0, "USD", "0.00"),
        (-150, "EUR", "-1.50"),
    ],
)
def test_formats_with_the_currency_decimals(minor: int, currency: str, text: str) -> None:
    assert BOOK.format_minor(minor, currency) == text


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_round_trip(currency: str) -> None:
    for minor in (1, 9, 10, 99, 100, 101, 123456789, 10**9):
        assert BOOK.parse_amount(BOOK.format_minor(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "code"),
    [
        ("0.001", "USD", "invalid_amount"),  # more decimals than USD allows
        ("10.000", "USD", "invalid_amount"),  # even trailing zeros: the rule is about digits
        ("1.5", "JPY", "invalid_amount"),
        ("0.0001", "KWD", "invalid_amount"),
        ("0", "USD", "invalid_amount"),
        ("0.00", "USD", "invalid_amount"),
        ("-5", "USD", "invalid_amount"),
        ("+5", "USD", "invalid_amount"),
        ("NaN", "USD", "invalid_amount"),
        ("nan", "USD", "invalid_amount"),
        ("Infinity", "USD", "invalid_amount"),
        ("-Infinity", "USD", "invalid_amount"),
        ("1e3", "USD", "invalid_amount"),
        ("1E-2", "USD", "invalid_amount"),
        ("", "USD", "invalid_amount"),
        (" 5", "USD", "invalid_amount"),
        ("5 ", "USD", "invalid_amount"),
        ("1,000", "USD", "invalid_amount"),
        ("1_000", "USD", "invalid_amount"),
        ("0x10", "USD", "invalid_amount"),
        (".5", "USD", "invalid_amount"),
        ("5.", "USD", "invalid_amount"),
        ("007", "USD", "invalid_amount"),
        ("\uff11\uff12", "USD", "invalid_amount"),  # full-width digits
        ("1000000000.01", "USD", "amount_too_large"),
        ("9" * 31, "USD", "amount_too_large"),
        ("9" * 40, "USD", "invalid_amount"),
        ("5", "usd", "invalid_currency"),
        ("5", "US", "invalid_currency"),
        ("5", "", "invalid_currency"),
        ("5", "XYZ", "unsupported_currency"),
        ("5", "BTC", "unsupported_currency"),
    ],
)
def test_rejects(text: str, currency: str, code: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        BOOK.parse_amount(text, currency)
    assert caught.value.code == code
    assert caught.value.message  # always a human explanation


def test_unknown_currency_in_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ISO 4217"):
        CurrencyBook.of(["USD", "ABC"])


def test_configured_subset_limits_currencies() -> None:
    book = CurrencyBook.of(["EUR"])
    assert book.parse_amount("1.00", "EUR") == 100
    with pytest.raises(InvalidArgument):
        book.parse_amount("1.00", "USD")


def test_format_minor_pads_small_values() -> None:
    assert format_minor(5, 3) == "0.005"
    assert format_minor(5, 0) == "5"


def test_major_to_minor_is_exact() -> None:
    assert major_to_minor(Decimal("10000"), 2) == 1_000_000
    assert major_to_minor(Decimal("10000"), 3) == 10_000_000
    with pytest.raises(ValueError):
        major_to_minor(Decimal("0.001"), 2)
