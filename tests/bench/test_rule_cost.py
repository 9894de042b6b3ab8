"""The rule-cost measurement runs and measures what it names (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench.rule_cost import WORST_FEATURES, WORST_MOVEMENT, main, tiered_rule_set
from fraud_service.rules import evaluate_rule_set


def test_the_fifty_rule_set_is_fifty_rules_and_the_worst_case_hits_every_kind() -> None:
    rule_set = tiered_rule_set(10)
    assert len(rule_set.rules) == 50
    verdict = evaluate_rule_set(WORST_MOVEMENT, WORST_FEATURES, rule_set)
    hit_kinds = {reason.rule_id.rsplit("_", 1)[0] for reason in verdict.reasons}
    assert hit_kinds == {"large_amount", "structuring", "velocity", "new_account", "balance_share"}


def test_the_report_has_a_row_for_5_and_for_50_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--calls", "3"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 5")]
    assert [row.split("|")[1].strip() for row in rows] == ["5", "50"]
