"""Property tests of the one money parser: exact round trips and no accepted garbage."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wallet_service.errors import InvalidArgument
from wallet_service.money import DEFAULT_CURRENCIES, CurrencyBook, format_minor

MAX = Decimal("1000000000")
BOOK = CurrencyBook.of(DEFAULT_CURRENCIES, MAX)
CURRENCIES = st.sampled_from(sorted(DEFAULT_CURRENCIES))
# What the API promises to accept, and nothing else: plain digits, at most one dot.
STRICT = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
FAST = settings(max_examples=300, deadline=None)


def max_minor(currency: str) -> int:
    return int(MAX.scaleb(BOOK.exponent(currency)))


@FAST
@given(currency=CURRENCIES, data=st.data())
def test_format_then_parse_is_identity(currency: str, data: st.DataObject) -> None:
    minor = data.draw(st.integers(min_value=1, max_value=max_minor(currency)))
    text = BOOK.format_minor(minor, currency)
    assert STRICT.fullmatch(text), text
    assert BOOK.parse_amount(text, currency) == minor


@FAST
@given(currency=CURRENCIES, data=st.data())
def test_parse_then_format_is_canonical(currency: str, data: st.DataObject) -> None:
    exponent = BOOK.exponent(currency)
    whole = data.draw(st.integers(min_value=0, max_value=10**9))
    decimals = data.draw(st.integers(min_value=0, max_value=exponent))
    fraction = data.draw(st.integers(min_value=0, max_value=10**decimals - 1)) if decimals else 0
    text = f"{whole}.{fraction:0{decimals}d}" if decimals else str(whole)
    value = Decimal(text)
    if value == 0 or value > MAX:
        return
    minor = BOOK.parse_amount(text, currency)
    assert Decimal(minor).scaleb(-exponent) == value
    assert Decimal(BOOK.format_minor(minor, currency)) == value


@FAST
@given(minor=st.integers(min_value=-(10**20), max_value=10**20), exponent=st.integers(0, 3))
def test_format_minor_is_exact_for_any_sign(minor: int, exponent: int) -> None:
    text = format_minor(minor, exponent)
    assert Decimal(text) == Decimal(minor).scaleb(-exponent)
    assert len(text.lstrip("-").partition(".")[2]) == exponent
    assert format_minor(-minor, exponent) == (
        text[1:] if text.startswith("-") else ("-" + text if minor else text)
    )


@FAST
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.text(alphabet="0123456789.-+eE _,\n\t ", max_size=40),
        st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,5})?", fullmatch=True).map(lambda s: s + "\n"),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.floats().map(repr),
    ),
    currency=CURRENCIES,
)
@example(text="1\n", currency="USD")
@example(text="10.00\n", currency="USD")
@example(text="NaN", currency="USD")
@example(text="1e3", currency="USD")
@example(text="\u0661\u0662", currency="USD")  # Arabic-Indic digits
@example(text="-1", currency="USD")
@example(text="0.00", currency="USD")
@example(text="1000000000.01", currency="USD")
def test_parser_accepts_only_plain_positive_decimals(text: str, currency: str) -> None:
    """Anything accepted is plain decimal notation within the currency's decimals and the
    maximum, and maps to exactly that value; everything else is InvalidArgument."""
    exponent = BOOK.exponent(currency)
    try:
        minor = BOOK.parse_amount(text, currency)
    except InvalidArgument:
        return
    assert STRICT.fullmatch(text), f"accepted non-plain amount {text!r} as {minor}"
    assert len(text.partition(".")[2]) <= exponent
    assert 0 < Decimal(text) <= MAX
    assert minor == Decimal(text).scaleb(exponent)


@FAST
@given(currency=st.text(max_size=6))
def test_unknown_currencies_are_invalid_argument(currency: str) -> None:
    if currency in DEFAULT_CURRENCIES:
        return
    try:
        BOOK.parse_amount("1", currency)
    except InvalidArgument:
        return
    raise AssertionError(f"currency {currency!r} accepted")
