"""The window_aggregate kind through a rule set document: each measure, scope and window
at limit-1, limit and limit+1 (this movement counts toward the aggregate, like velocity),
and validation naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from fraud.v1 import fraud_pb2

from fraud_service.rules import MovementType, RuleSet, evaluate_rule_set
from fraud_service.rulesets import RuleSetError, parse_rule_set
from fraud_service.servicer import features_from_proto
from tests.support import features, movement, to_counterparty

# Which feature fields (count, sum) each scope and window reads.
FIELDS = {
    ("sender", "1h"): ("count_last_hour", "sum_last_hour_minor"),
    ("sender", "24h"): ("count_last_day", "sum_last_day_minor"),
    ("counterparty", "1h"): (
        "count_to_counterparty_last_hour",
        "sum_to_counterparty_last_hour_minor",
    ),
    ("counterparty", "24h"): (
        "count_to_counterparty_last_day",
        "sum_to_counterparty_last_day_minor",
    ),
}
SCOPES_AND_WINDOWS = sorted(FIELDS)


def aggregate(**params: Any) -> RuleSet:
    rule = {"id": "agg", "kind": "window_aggregate", "decision": "BLOCK", "score": 60}
    return RuleSet(version="3", rules=parse_rule_set({"rules": [{**rule, "params": params}]}))


def hits(
    rules: RuleSet,
    amount: int,
    f: dict[str, int] | None = None,
    kind: MovementType = MovementType.TRANSFER,
) -> bool:
    verdict = evaluate_rule_set(movement(amount, "USD", kind), features(**(f or {})), rules)
    return [hit.rule_id for hit in verdict.reasons] == ["agg"]


@pytest.mark.parametrize(("scope", "window"), SCOPES_AND_WINDOWS)
@pytest.mark.parametrize(("earlier", "expected"), [(3, False), (4, True), (5, True)])
def test_count_with_this_movement_at_limit_hits(
    scope: str, window: str, earlier: int, expected: bool
) -> None:
    # limit 5: 4 earlier + this one = 5 reaches it; 3 + 1 = 4 does not.
    rules = aggregate(measure="count", scope=scope, window=window, limit=5)
    count_field, _ = FIELDS[(scope, window)]
    assert hits(rules, 100, {count_field: earlier}) is expected


@pytest.mark.parametrize(("scope", "window"), SCOPES_AND_WINDOWS)
@pytest.mark.parametrize(
    ("earlier_minor", "expected"), [(99_999, False), (100_000, True), (100_001, True)]
)
def test_sum_with_this_movement_at_limit_hits(
    scope: str, window: str, earlier_minor: int, expected: bool
) -> None:
    # limit 1500.00 USD: earlier + this 500.00 is 1499.99, 1500.00, 1500.01.
    rules = aggregate(measure="sum", scope=scope, window=window, limit="1500")
    count_field, sum_field = FIELDS[(scope, window)]
    assert hits(rules, 50_000, {count_field: 1, sum_field: earlier_minor}) is expected


@pytest.mark.parametrize(("scope", "window"), SCOPES_AND_WINDOWS)
def test_other_fields_do_not_count(scope: str, window: str) -> None:
    rules = aggregate(measure="count", scope=scope, window=window, limit=5)
    others = {
        field: 100 for key, pair in FIELDS.items() if key != (scope, window) for field in pair
    }
    assert not hits(rules, 100, others)


def test_the_sum_limit_is_in_the_movements_currency() -> None:
    rules = aggregate(measure="sum", window="1h", limit="1000")
    jpy = evaluate_rule_set(movement(1000, "JPY", MovementType.TRANSFER), features(), rules)
    usd = evaluate_rule_set(movement(1000, "USD", MovementType.TRANSFER), features(), rules)
    assert [h.rule_id for h in jpy.reasons] == ["agg"]
    assert usd.reasons == ()


def test_counterparty_scope_applies_to_transfers_only() -> None:
    rules = aggregate(measure="count", scope="counterparty", window="24h", limit=2)
    busy = {"count_to_counterparty_last_day": 9}
    assert hits(rules, 100, busy, MovementType.TRANSFER)
    assert not hits(rules, 100, busy, MovementType.DEPOSIT)
    assert not hits(rules, 100, busy, MovementType.WITHDRAWAL)


def test_a_hit_names_the_aggregate_and_the_instance_decision() -> None:
    rules = aggregate(measure="sum", scope="counterparty", window="24h", limit="10")
    verdict = evaluate_rule_set(
        movement(600, "USD", MovementType.TRANSFER),
        features(sum_to_counterparty_last_day_minor=400),
        rules,
    )
    assert verdict.decision.name == "BLOCK" and verdict.score == 60
    assert verdict.reasons[0].description == (
        "10.00 USD moved to this counterparty in the last 24h (limit 10 USD)"
    )


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"window": "2h"}, "rules[0].params.window", "must be one of 1h, 24h"),
        ({"measure": "avg"}, "rules[0].params.measure", "must be one of count, sum"),
        ({"scope": "everyone"}, "rules[0].params.scope", "must be one of sender, counterparty"),
        ({"limit": "0"}, "rules[0].params.limit", "must be > 0"),
        ({"limit": 2.5}, "rules[0].params.limit", "must be a number"),
        ({"measure": "count", "limit": "2.5"}, "rules[0].params.limit", "whole number"),
        ({"threshold": "5"}, "rules[0].params.threshold", "unknown parameter"),
    ],
)
def test_bad_params_are_refused_naming_the_field(
    params: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(RuleSetError, match=message) as caught:
        parse_rule_set({"rules": [{"kind": "window_aggregate", "params": params}]})
    assert caught.value.field == field


def test_a_sum_limit_may_have_decimals() -> None:
    rules = aggregate(measure="sum", limit="0.50")
    assert hits(rules, 50)
    assert not hits(rules, 49)


def test_the_servicer_reads_the_to_counterparty_features() -> None:
    message = fraud_pb2.Features(
        count_to_counterparty_last_hour=1,
        sum_to_counterparty_last_hour_minor=2,
        count_to_counterparty_last_day=3,
        sum_to_counterparty_last_day_minor=4,
    )
    read = features_from_proto(message)
    assert to_counterparty(read) == (1, 2, 3, 4)
