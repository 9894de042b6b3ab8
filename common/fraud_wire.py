"""The fields of two fraud.v1 messages as both services hold them in memory: what the rules
see of a user's history (`Features`) and a backtest's totals (`BacktestReport`). The wallet
computes and stores the first and reads the second back; the fraud service validates and
scores the first and counts the second. Each service adds its own behaviour by subclassing
(fraud_service.rules.Features validates, wallet_service.scoring.BacktestReport adds up)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class FeatureFields:
    """The user's completed movements in the currency, not counting this one."""

    account_age_seconds: int
    count_last_hour: int
    sum_last_hour_minor: int
    count_last_day: int
    sum_last_day_minor: int
    recent_day_amounts_minor: tuple[int, ...]
    distinct_counterparties_last_day: int
    # Of the source account; an external account (deposits) may be negative.
    balance_minor: int
    # The sender's transfers to this movement's counterparty (0 without one). Defaults:
    # features stored before these existed read as none.
    count_to_counterparty_last_hour: int = 0
    sum_to_counterparty_last_hour_minor: int = 0
    count_to_counterparty_last_day: int = 0
    sum_to_counterparty_last_day_minor: int = 0


@dataclass(frozen=True, kw_only=True)
class BacktestTotals:
    """Counts over the replayed movements (fraud.v1.BacktestReport says what each means)."""

    movements: int = 0
    flagged: int = 0
    blocked: int = 0
    live_flagged: int = 0
    live_blocked: int = 0
    live_unscored: int = 0
    newly_caught: int = 0
    no_longer_caught: int = 0
    confirmed_fraud: int = 0
    confirmed_fraud_caught: int = 0
    cleared: int = 0
    cleared_still_caught: int = 0
