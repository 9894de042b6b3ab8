"""Inputs for the fraud rules and the fraud service: movements, features, score requests."""

from __future__ import annotations

import dataclasses
from typing import Any

from fraud.v1 import fraud_pb2

from fraud_service.rules import Features, Movement, MovementType
from wallet_service.models import MovementFeatures

EXPONENTS = {"USD": 2, "JPY": 0, "KWD": 3}
ONE_YEAR = 365 * 86_400


def movement(
    amount_minor: int, currency: str = "USD", kind: MovementType = MovementType.DEPOSIT
) -> Movement:
    return Movement(
        type=kind,
        amount_minor=amount_minor,
        currency=currency,
        currency_exponent=EXPONENTS.get(currency, 2),
    )


def features(**overrides: Any) -> Features:
    """An established, quiet account unless a test says otherwise."""
    quiet = Features(
        account_age_seconds=ONE_YEAR,
        count_last_hour=0,
        sum_last_hour_minor=0,
        count_last_day=0,
        sum_last_day_minor=0,
        recent_day_amounts_minor=(),
        distinct_counterparties_last_day=0,
        balance_minor=10**15,
    )
    return dataclasses.replace(quiet, **overrides)


def everything_at_once() -> tuple[Movement, Features]:
    """A movement that every one of the five default rules flags."""
    return (
        movement(1_000_000, kind=MovementType.WITHDRAWAL),
        features(
            account_age_seconds=10,
            count_last_hour=9,
            recent_day_amounts_minor=(950_000, 950_000, 950_000),
            balance_minor=1_000_000,
        ),
    )


def score_request(
    amount_minor: int,
    *,
    movement_type: str = "deposit",
    currency: str = "USD",
    exponent: int = 2,
    count_last_hour: int = 0,
) -> fraud_pb2.ScoreRequest:
    return fraud_pb2.ScoreRequest(
        movement=fraud_pb2.Movement(
            type=movement_type,
            amount_minor=amount_minor,
            currency=currency,
            currency_exponent=exponent,
            user_id="u-1",
            occurred_at="2025-01-01T00:00:00Z",
        ),
        features=fraud_pb2.Features(
            account_age_seconds=10**8,
            count_last_hour=count_last_hour,
            balance_minor=10**12,
        ),
    )


def to_counterparty(f: Features | MovementFeatures) -> tuple[int, int, int, int]:
    """The counterparty windows of the fraud service's or the wallet's features: (count, sum)
    in the last hour, then in the last day."""
    return (
        f.count_to_counterparty_last_hour,
        f.sum_to_counterparty_last_hour_minor,
        f.count_to_counterparty_last_day,
        f.sum_to_counterparty_last_day_minor,
    )
