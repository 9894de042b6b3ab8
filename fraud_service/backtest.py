"""Backtest: what a rule set would have decided on movements scored before. Pure.

The wallet stores, with every scored movement, the features it sent, the verdict it got
and, later, the review. Replaying those features through another version's rules answers
"what would this draft have done?" exactly, without recomputing history. Only the rules
are replayed: lists and snoozes are not part of a version (and snoozes change with time),
so a backtest compares rules with rules, plus what the stored verdicts said.

The report is counts, and counts add up: a range replayed in chunks is the sum of the
chunks' reports (the wallet adds them up).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from common.fraud_wire import BacktestTotals
from fraud_service.rules import (
    NO_LIST_MATCH,
    Decision,
    Features,
    Movement,
    RuleSet,
    evaluate_rule_set,
)

REVIEW_CLEARED = "cleared"
REVIEW_CONFIRMED = "confirmed_fraud"
# Stored decisions that caught the movement (UNSCORED was a fraud outage, not a catch).
_LIVE_CAUGHT = frozenset({"REVIEW", "BLOCK"})


@dataclass(frozen=True, kw_only=True)
class ScoredMovement:
    """One movement as the wallet scored it, with what was decided then."""

    movement: Movement
    features: Features
    live_decision: str  # ALLOW | REVIEW | BLOCK | UNSCORED
    live_rule_ids: tuple[str, ...] = ()
    review_status: str = ""  # "" | pending | cleared | confirmed_fraud


@dataclass(frozen=True, kw_only=True)
class RuleCounts:
    rule_id: str
    hits: int = 0
    live_hits: int = 0
    confirmed_fraud_hits: int = 0
    cleared_hits: int = 0

    def __add__(self, other: RuleCounts) -> RuleCounts:
        return RuleCounts(
            rule_id=self.rule_id,
            hits=self.hits + other.hits,
            live_hits=self.live_hits + other.live_hits,
            confirmed_fraud_hits=self.confirmed_fraud_hits + other.confirmed_fraud_hits,
            cleared_hits=self.cleared_hits + other.cleared_hits,
        )


@dataclass(frozen=True, kw_only=True)
class Report(BacktestTotals):
    rules: tuple[RuleCounts, ...] = field(default=())


_TOTALS = tuple(name for name in Report.__dataclass_fields__ if name != "rules")


def backtest(rule_set: RuleSet, items: Iterable[ScoredMovement]) -> Report:
    """Every item through `rule_set`'s rules alone; the counts of what it decides, next
    to the stored verdicts and the reviews. Rules come in the set's order, then rule ids
    that only the stored verdicts name (e.g. a rule the draft dropped)."""
    totals = dict.fromkeys(_TOTALS, 0)
    per_rule = {i.rule_id: RuleCounts(rule_id=i.rule_id) for i in rule_set.rules}
    for item in items:
        verdict = evaluate_rule_set(item.movement, item.features, rule_set, NO_LIST_MATCH)
        caught = verdict.decision is not Decision.ALLOW
        was_caught = item.live_decision in _LIVE_CAUGHT
        hit_ids = {hit.rule_id for hit in verdict.reasons}
        for name, counted in _item_totals(item, verdict.decision, caught, was_caught):
            totals[name] += counted
        for rule_id in hit_ids | set(item.live_rule_ids):
            per_rule[rule_id] = per_rule.get(rule_id, RuleCounts(rule_id=rule_id)) + _rule_item(
                rule_id, item, rule_id in hit_ids
            )
    return Report(**totals, rules=tuple(per_rule.values()))


def _item_totals(
    item: ScoredMovement, decision: Decision, caught: bool, was_caught: bool
) -> Sequence[tuple[str, int]]:
    confirmed = item.review_status == REVIEW_CONFIRMED
    cleared = item.review_status == REVIEW_CLEARED
    return (
        ("movements", 1),
        ("flagged", decision is Decision.REVIEW),
        ("blocked", decision is Decision.BLOCK),
        ("live_flagged", item.live_decision == "REVIEW"),
        ("live_blocked", item.live_decision == "BLOCK"),
        ("live_unscored", item.live_decision == "UNSCORED"),
        ("newly_caught", caught and not was_caught),
        ("no_longer_caught", was_caught and not caught),
        ("confirmed_fraud", confirmed),
        ("confirmed_fraud_caught", confirmed and caught),
        ("cleared", cleared),
        ("cleared_still_caught", cleared and caught),
    )


def _rule_item(rule_id: str, item: ScoredMovement, hit: bool) -> RuleCounts:
    return RuleCounts(
        rule_id=rule_id,
        hits=int(hit),
        live_hits=int(rule_id in item.live_rule_ids),
        confirmed_fraud_hits=int(hit and item.review_status == REVIEW_CONFIRMED),
        cleared_hits=int(hit and item.review_status == REVIEW_CLEARED),
    )
