"""How the wallet asks for a fraud verdict, independent of transport.

`Scorer` is the interface; `ThresholdScorer` applies the seed rule in-process (used
when no fraud service is configured); `wallet_service.fraud_client.GrpcFraudScorer`
calls fraud_service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from common.fraud_wire import BacktestTotals
from wallet_service.errors import Unavailable
from wallet_service.models import Decision, FraudReason, FraudVerdict, MovementFeatures, TxType
from wallet_service.money import major_to_minor


class ScorerUnavailable(Exception):
    """The scorer could not answer in time; the fail mode decides what happens next."""


@dataclass(frozen=True)
class ScoreInput:
    type: TxType
    amount_minor: int
    currency: str
    currency_exponent: int
    user_id: str
    counterparty_id: str | None
    occurred_at: datetime
    features: MovementFeatures
    # Canonical usernames (wallet_service.identity): the fraud service's block and allow
    # lists are lists of names, as admins know users.
    username: str = ""
    counterparty_username: str = ""


@dataclass(frozen=True, kw_only=True)
class SnoozeInput:
    """A cleared review's request: skip `rule_ids` for `username` for `days`."""

    username: str  # canonical
    rule_ids: tuple[str, ...]
    days: int
    transaction_id: str
    note: str
    actor: str  # the reviewing admin


class SnoozeRefused(ValueError):
    """The fraud service refused the snooze (e.g. a rule id it cannot snooze)."""


@dataclass(frozen=True, kw_only=True)
class BacktestItem:
    """A stored movement to replay: what was sent to the scorer, and what came of it."""

    movement: ScoreInput
    live_decision: str  # the stored verdict's decision
    live_rule_ids: tuple[str, ...]
    review_status: str  # "" when never flagged


@dataclass(frozen=True, kw_only=True)
class RuleBacktest:
    rule_id: str
    hits: int = 0  # the replayed version's rule hits
    live_hits: int = 0  # the stored verdicts named this rule id
    confirmed_fraud_hits: int = 0
    cleared_hits: int = 0


@dataclass(frozen=True, kw_only=True)
class BacktestReport(BacktestTotals):
    """A version's backtest totals and per-rule counts. Counts add up, so the report of a
    range is the sum of its chunks' (`+`)."""

    version: int
    rules: tuple[RuleBacktest, ...] = ()

    def __add__(self, other: BacktestReport) -> BacktestReport:
        rules = {r.rule_id: r for r in self.rules}
        for r in other.rules:
            mine = rules.get(r.rule_id, RuleBacktest(rule_id=r.rule_id))
            rules[r.rule_id] = RuleBacktest(
                rule_id=r.rule_id,
                **{name: getattr(mine, name) + getattr(r, name) for name in _RULE_COUNTS},
            )
        totals = {name: getattr(self, name) + getattr(other, name) for name in REPORT_COUNTS}
        return BacktestReport(version=self.version, **totals, rules=tuple(rules.values()))


_RULE_COUNTS = ("hits", "live_hits", "confirmed_fraud_hits", "cleared_hits")
REPORT_COUNTS = tuple(
    name for name in BacktestReport.__dataclass_fields__ if name not in ("version", "rules")
)


class Scorer(Protocol):
    def score(self, movement: ScoreInput) -> FraudVerdict:
        """A verdict, or ScorerUnavailable."""

    def score_batch(self, movements: Sequence[ScoreInput]) -> list[FraudVerdict]:
        """One verdict per movement, in order (one round trip), or ScorerUnavailable.
        Each movement's features must already count the earlier ones (`with_earlier`)."""

    def snooze(self, request: SnoozeInput) -> None:
        """Recorded by the fraud service, or SnoozeRefused / ScorerUnavailable."""

    def backtest(
        self, version: int, items: Sequence[BacktestItem], *, timeout_seconds: float
    ) -> BacktestReport:
        """`version`'s rules replayed on `items`, within `timeout_seconds` in all; or
        NotFound(rule_set_not_found) / InvalidArgument / Unavailable(fraud_unavailable)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class ThresholdScorer:
    """The seed rule: an amount at or above the threshold (major units) is reviewed."""

    threshold: Decimal = Decimal("10000")

    def score(self, movement: ScoreInput) -> FraudVerdict:
        limit = major_to_minor(self.threshold, movement.currency_exponent)
        if movement.amount_minor >= limit:
            reason = FraudReason(
                "large_amount", f"Amount is at or above {self.threshold} {movement.currency}"
            )
            return FraudVerdict(50, Decision.REVIEW, (reason,), "seed-1")
        return FraudVerdict(0, Decision.ALLOW, (), "seed-1")

    def score_batch(self, movements: Sequence[ScoreInput]) -> list[FraudVerdict]:
        return [self.score(m) for m in movements]

    def snooze(self, request: SnoozeInput) -> None:
        raise ScorerUnavailable("snoozes need the fraud service (FRAUD_ADDR)")

    def backtest(
        self, version: int, items: Sequence[BacktestItem], *, timeout_seconds: float
    ) -> BacktestReport:
        raise Unavailable("fraud_unavailable", "Backtests need the fraud service (FRAUD_ADDR)")

    def close(self) -> None:
        return None


# The features query reads the newest this-many movements of the day (FEATURE_WINDOW_LIMIT).
FEATURE_WINDOW = 200


def with_earlier(
    base: MovementFeatures,
    earlier: Sequence[tuple[int, str | None]],
    *,
    outgoing: bool,
    counterparty: str | None = None,
) -> MovementFeatures:
    """The features a movement would read from the ledger if `earlier` movements of the
    same sender and currency (amount, counterparty; oldest first) had committed just
    before it, from `base`, the features read before any of them. So item k of a batch is
    scored as if items 0..k-1 had been sent one by one before it. The window keeps the
    newest FEATURE_WINDOW amounts like the query; distinct counterparties counts the
    batch's new ones on top (no rule reads it; it can only overcount a counterparty
    already paid today). `outgoing`: the earlier amounts left the source balance.
    `counterparty`: this movement's, whose to-counterparty counts and sums `base` holds
    (read for it); the earlier movements to it are added there too."""
    if not earlier:
        return base
    amounts = tuple(amount for amount, _ in reversed(earlier))
    recent = (amounts + base.recent_day_amounts_minor)[:FEATURE_WINDOW]
    added = sum(amounts)
    counterparties = {c for _, c in earlier if c}
    return replace(
        base,
        count_last_hour=min(base.count_last_hour + len(amounts), len(recent)),
        sum_last_hour_minor=base.sum_last_hour_minor + added,
        count_last_day=len(recent),
        sum_last_day_minor=sum(recent),
        recent_day_amounts_minor=recent,
        distinct_counterparties_last_day=base.distinct_counterparties_last_day
        + len(counterparties),
        balance_minor=base.balance_minor - added if outgoing else base.balance_minor,
        **_to_counterparty(base, earlier, counterparty, len(recent)),
    )


def _to_counterparty(
    base: MovementFeatures,
    earlier: Sequence[tuple[int, str | None]],
    counterparty: str | None,
    window: int,
) -> dict[str, int]:
    """The earlier movements are all within the hour; counts saturate at the window."""
    if counterparty is None:
        return {}
    to_it = [amount for amount, c in earlier if c == counterparty]
    return {
        "count_to_counterparty_last_hour": min(
            base.count_to_counterparty_last_hour + len(to_it), window
        ),
        "sum_to_counterparty_last_hour_minor": base.sum_to_counterparty_last_hour_minor
        + sum(to_it),
        "count_to_counterparty_last_day": min(
            base.count_to_counterparty_last_day + len(to_it), window
        ),
        "sum_to_counterparty_last_day_minor": base.sum_to_counterparty_last_day_minor + sum(to_it),
    }
