"""The backtest's counts (fraud_service.backtest, pure): a draft replayed on scored
movements, per rule, against the stored verdicts and against the reviews."""

from __future__ import annotations

from collections.abc import Mapping

from fraud_service.backtest import Report, RuleCounts, ScoredMovement, backtest
from fraud_service.rules import MovementType, RuleSet
from fraud_service.rulesets import parse_rule_set
from tests.support import features, movement


def draft(*rules: Mapping[str, object]) -> RuleSet:
    return RuleSet(version="2", rules=parse_rule_set({"rules": list(rules)}))


def scored(
    amount_minor: int, live: str = "ALLOW", hits: tuple[str, ...] = (), review: str = ""
) -> ScoredMovement:
    return ScoredMovement(
        movement=movement(amount_minor),
        features=features(),
        live_decision=live,
        live_rule_ids=hits,
        review_status=review,
    )


LOWER = {"kind": "large_amount", "params": {"threshold": "500"}}
HISTORY = (
    scored(10_000),  # 100 USD: nobody catches it
    scored(60_000, review=""),  # 600 USD: caught by the draft only
    scored(70_000),  # 700 USD: the draft only
    scored(80_000, live="UNSCORED", hits=("unscored",), review="pending"),
    scored(1_200_000, live="REVIEW", hits=("large_amount",), review="confirmed_fraud"),
    scored(1_500_000, live="REVIEW", hits=("large_amount",), review="cleared"),
    scored(40_000, live="REVIEW", hits=("velocity",), review="cleared"),  # the draft drops it
)


def test_a_lower_threshold_counts_what_it_adds_and_what_it_drops() -> None:
    report = backtest(draft(LOWER), HISTORY)
    assert report == Report(
        movements=7,
        flagged=5,
        blocked=0,
        live_flagged=3,
        live_blocked=0,
        live_unscored=1,
        newly_caught=3,  # 600, 700 and the unscored 800
        no_longer_caught=1,  # the velocity hit on 400
        confirmed_fraud=1,
        confirmed_fraud_caught=1,
        cleared=2,
        cleared_still_caught=1,
        rules=(
            RuleCounts(
                rule_id="large_amount", hits=5, live_hits=2, confirmed_fraud_hits=1, cleared_hits=1
            ),
            RuleCounts(rule_id="unscored", live_hits=1),
            RuleCounts(rule_id="velocity", live_hits=1),
        ),
    )


def test_a_block_rule_counts_as_blocked_and_each_rule_counts_its_own_hits() -> None:
    block = {
        "id": "huge",
        "kind": "large_amount",
        "decision": "BLOCK",
        "params": {"threshold": "10000"},
    }
    report = backtest(draft(LOWER, block), HISTORY)
    assert (report.flagged, report.blocked) == (3, 2)
    assert [(r.rule_id, r.hits) for r in report.rules[:2]] == [("large_amount", 5), ("huge", 2)]


def test_the_threshold_boundary_is_exact() -> None:
    at, below = scored(50_000), scored(49_999)
    assert backtest(draft(LOWER), (at, below)).flagged == 1


def test_features_as_stored_decide_not_the_present() -> None:
    """Velocity replays the stored count: the 10th movement of an hour is caught."""
    busy = ScoredMovement(
        movement=movement(100, kind=MovementType.TRANSFER),
        features=features(count_last_hour=9),
        live_decision="ALLOW",
    )
    quiet = ScoredMovement(
        movement=movement(100, kind=MovementType.TRANSFER),
        features=features(count_last_hour=8),
        live_decision="ALLOW",
    )
    report = backtest(draft({"kind": "velocity"}), (busy, quiet))
    assert (report.flagged, report.newly_caught) == (1, 1)


def test_nothing_replayed_is_an_empty_report_naming_the_drafts_rules() -> None:
    assert backtest(draft(LOWER), ()) == Report(rules=(RuleCounts(rule_id="large_amount"),))
