"""Backtest a fraud rule-set version on the wallet's history (issue 13). No gRPC, no SQL.

The wallet holds the history: every scored movement is stored with the features it was
scored with (`transactions.fraud_features`, written in the same write as the movement),
its verdict and its review. So a backtest replays exactly what was scored: the store
reads the movements of a bounded range, this module turns them into what the scorer was
sent then plus what came of it, and the fraud service evaluates the version's rules on
them (fraud.v1.FraudAdmin/Backtest) and counts.

Bounded, so that it answers within one call's deadline: a range of at most
MAX_RANGE (7 days) and at most MAX_MOVEMENTS (10,000) movements in it; a wider or
fuller range is refused with INVALID_ARGUMENT naming the limit (narrow the range and
add the reports up: counts add).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from wallet_service.errors import InvalidArgument
from wallet_service.identity import canonical_username
from wallet_service.models import ScoredTransaction, TxType
from wallet_service.scoring import BacktestItem, BacktestReport, ScoreInput, Scorer
from wallet_service.store_contract import WalletStore

MAX_RANGE = timedelta(days=7)
MAX_MOVEMENTS = 10_000
# The most a backtest may take (and what it gets when the caller set no deadline); the
# scorer is held to what is left of the caller's deadline.
DEFAULT_TIMEOUT_SECONDS = 30.0


def run_backtest(
    *,
    store: WalletStore,
    scorer: Scorer,
    exponent: Callable[[str], int],
    version: int,
    since: datetime,
    until: datetime,
    timeout_seconds: float | None,
    max_movements: int = MAX_MOVEMENTS,
) -> BacktestReport:
    if version < 1:
        raise InvalidArgument("invalid_argument", f"version must be at least 1, got {version}")
    if until <= since:
        raise InvalidArgument("invalid_time", "until must be after since")
    if until - since > MAX_RANGE:
        raise InvalidArgument(
            "backtest_range_too_long",
            f"A backtest covers at most {MAX_RANGE.days} days; narrow since..until",
        )
    found = store.scored_transactions(since=since, until=until, limit=max_movements + 1)
    if len(found) > max_movements:
        raise InvalidArgument(
            "backtest_range_too_large",
            f"A backtest replays at most {max_movements} movements and this range holds "
            "more; narrow since..until",
        )
    items = [_item(scored, exponent) for scored in found]
    timeout = min(timeout_seconds or DEFAULT_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS)
    return scorer.backtest(version, items, timeout_seconds=max(0.0, timeout))


def _item(scored: ScoredTransaction, exponent: Callable[[str], int]) -> BacktestItem:
    tx = scored.transaction
    # The initiator's name is on the side the money left from, except for a deposit.
    sender = tx.to_username if tx.type is TxType.DEPOSIT else tx.from_username
    recipient = tx.to_username if tx.type is TxType.TRANSFER else None
    verdict = tx.verdict
    movement = ScoreInput(
        type=tx.type,
        amount_minor=tx.amount_minor,
        currency=tx.currency,
        currency_exponent=exponent(tx.currency),
        user_id=tx.initiated_by,
        counterparty_id=tx.to_user_id if tx.type is TxType.TRANSFER else None,
        occurred_at=tx.created_at,
        features=scored.features,
        username=canonical_username(sender) if sender else "",
        counterparty_username=canonical_username(recipient) if recipient else "",
    )
    return BacktestItem(
        movement=movement,
        live_decision=verdict.decision.value if verdict else "",
        live_rule_ids=tuple(r.rule_id for r in verdict.reasons) if verdict else (),
        review_status=tx.review_status.value if tx.review_status else "",
    )
