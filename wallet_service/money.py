"""The one place that converts money between text and integer minor units.

Amounts travel as decimal strings ("1234.50") with an ISO 4217 code and are stored
as integer minor units. Parsing goes through `Decimal`, never float, and refuses
anything a careful ledger would not accept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from wallet_service.errors import InvalidArgument

# ISO 4217 minor-unit exponents of the currencies this service knows how to hold.
ISO_4217_EXPONENTS: Mapping[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "INR": 2, "CAD": 2, "AUD": 2, "NZD": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "SGD": 2, "HKD": 2, "CNY": 2,
    "BRL": 2, "MXN": 2, "ZAR": 2, "ILS": 2, "AED": 2, "SAR": 2, "TRY": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip

DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "INR", "KWD")
DEFAULT_MAX_AMOUNT = Decimal("1000000000")  # per movement, in major units
# Amounts and balances are stored as signed 64-bit integers (BIGINT) of minor units.
INT64_MAX = 2**63 - 1

# Plain decimal notation only: digits, at most one dot. No sign, exponent, spaces,
# underscores or thousands separators: each of those has fooled a parser somewhere.
_PLAIN_DECIMAL = re.compile(r"^(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,30})?$")
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class CurrencyBook:
    """The currencies a deployment supports and the largest single movement it accepts."""

    exponents: Mapping[str, int]
    max_amount: Decimal = DEFAULT_MAX_AMOUNT

    @classmethod
    def of(cls, codes: Iterable[str], max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> CurrencyBook:
        exponents = {}
        for code in codes:
            if code not in ISO_4217_EXPONENTS:
                raise ValueError(f"unknown ISO 4217 currency {code!r}")
            exponents[code] = ISO_4217_EXPONENTS[code]
        if not exponents:
            raise ValueError("at least one currency must be supported")
        if not max_amount > 0:
            raise ValueError("the maximum amount must be positive")
        for code, exponent in sorted(exponents.items()):
            # One movement of MAX_AMOUNT must be storable, or it would fail deep in the database.
            if max_amount.scaleb(exponent) > INT64_MAX:
                raise ValueError(
                    f"MAX_AMOUNT {max_amount} {code} is {max_amount.scaleb(exponent):f} minor "
                    f"units, more than a 64-bit balance holds ({INT64_MAX}); lower MAX_AMOUNT "
                    f"or drop {code}"
                )
        return cls(exponents=exponents, max_amount=max_amount)

    def exponent(self, currency: str) -> int:
        return self.exponents[self.check_currency(currency)]

    def check_currency(self, currency: str) -> str:
        """Return the code if supported; codes are upper case by ISO 4217, so 'usd' is refused."""
        if not _CURRENCY_CODE.fullmatch(currency or ""):
            raise InvalidArgument(
                "invalid_currency",
                # Echo a bounded prefix only: unbounded input would blow the status trailer.
                f"Currency must be a 3-letter upper-case ISO 4217 code, got {currency[:8]!r}",
            )
        if currency not in self.exponents:
            raise InvalidArgument(
                "unsupported_currency",
                f"Currency {currency} is not supported "
                f"(supported: {', '.join(sorted(self.exponents))})",
            )
        return currency

    def parse_amount(self, text: str, currency: str) -> int:
        """Parse a positive amount into minor units of `currency`, exactly."""
        exponent = self.exponent(currency)
        if not isinstance(text, str) or not _PLAIN_DECIMAL.fullmatch(text):
            raise InvalidArgument(
                "invalid_amount",
                f"Amount must be a positive decimal number like '12.34', got {str(text)[:40]!r}",
            )
        value = Decimal(text)  # cannot fail: the pattern admits only plain decimals
        if value == 0:
            raise InvalidArgument("invalid_amount", "Amount must be greater than zero")
        if value > self.max_amount:
            raise InvalidArgument(
                "amount_too_large", f"Amount must not exceed {self.max_amount} {currency}"
            )
        decimals = len(text.partition(".")[2])
        if decimals > exponent:
            raise InvalidArgument(
                "invalid_amount",
                f"{currency} allows at most {exponent} decimal places, got {text!r}",
            )
        return int(value.scaleb(exponent))

    def requested_minor(self, text: str, currency: str) -> int | None:
        """The minor units a request names, by the currency's ISO 4217 exponent, without
        the deployment's checks (supported currency, MAX_AMOUNT): used only to compare a
        retry with the request that first used its idempotency key, which may have been
        accepted under another configuration. None when the text names no amount."""
        exponent = ISO_4217_EXPONENTS.get(currency)
        if exponent is None or not isinstance(text, str) or not _PLAIN_DECIMAL.fullmatch(text):
            return None
        if len(text.partition(".")[2]) > exponent:
            return None
        return int(Decimal(text).scaleb(exponent))

    def format_minor(self, minor: int, currency: str) -> str:
        """Format minor units with exactly the currency's decimals (stored rows may hold a
        currency that configuration no longer accepts for new movements)."""
        return format_minor(
            minor, ISO_4217_EXPONENTS.get(currency, self.exponents.get(currency, 0))
        )


def format_minor(minor: int, exponent: int) -> str:
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    if exponent == 0:
        return sign + digits
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def major_to_minor(amount: Decimal, exponent: int) -> int:
    """Exact conversion of a configured major-unit amount (e.g. a threshold) to minor units."""
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} has more than {exponent} decimals")
    return int(minor)
