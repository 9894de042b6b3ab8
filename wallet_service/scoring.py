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


class Scorer(Protocol):
    def score(self, movement: ScoreInput) -> FraudVerdict:
        """A verdict, or ScorerUnavailable."""

    def score_batch(self, movements: Sequence[ScoreInput]) -> list[FraudVerdict]:
        """One verdict per movement, in order (one round trip), or ScorerUnavailable.
        Each movement's features must already count the earlier ones (`with_earlier`)."""

    def snooze(self, request: SnoozeInput) -> None:
        """Recorded by the fraud service, or SnoozeRefused / ScorerUnavailable."""

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

    def close(self) -> None:
        return None


# The features query reads the newest this-many movements of the day (FEATURE_WINDOW_LIMIT).
FEATURE_WINDOW = 200


def with_earlier(
    base: MovementFeatures, earlier: Sequence[tuple[int, str | None]], *, outgoing: bool
) -> MovementFeatures:
    """The features a movement would read from the ledger if `earlier` movements of the
    same sender and currency (amount, counterparty; oldest first) had committed just
    before it, from `base`, the features read before any of them. So item k of a batch is
    scored as if items 0..k-1 had been sent one by one before it. The window keeps the
    newest FEATURE_WINDOW amounts like the query; distinct counterparties counts the
    batch's new ones on top (no rule reads it; it can only overcount a counterparty
    already paid today). `outgoing`: the earlier amounts left the source balance."""
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
    )
