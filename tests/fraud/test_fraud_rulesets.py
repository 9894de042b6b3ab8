"""Rule sets as data, without a database: validation naming the field, each kind at its
boundaries through a document (the data-driven path), reason templates, list precedence."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fraud_service.config import load_config
from fraud_service.live import Lists
from fraud_service.rules import (
    ALL_RULES,
    BLOCK_LIST,
    Decision,
    ListMatch,
    MovementType,
    RuleSet,
    Verdict,
    evaluate,
    evaluate_rule_set,
    rule_set_from_config,
)
from fraud_service.rulesets import RuleSetError, parse_rule_set, to_document
from tests.support import everything_at_once, features, movement


def rule_set(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet(version="7", rules=parse_rule_set({"rules": list(rules)}))


def verdict_of(rules: RuleSet, amount: int, currency: str = "USD", **feature: object) -> Verdict:
    kind = feature.pop("kind", MovementType.DEPOSIT)
    assert isinstance(kind, MovementType)
    return evaluate_rule_set(movement(amount, currency, kind), features(**feature), rules)


def hit_ids(verdict: Verdict) -> list[str]:
    return [hit.rule_id for hit in verdict.reasons]


# --- validation: every refusal names its field ---


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"rules": []}, "rules", "rules must not be empty"),
        ({}, "rules", "rules must be a list"),
        ({"rules": [{"kind": "eval"}]}, "rules[0].kind", "rules[0].kind must be one of"),
        (
            {"rules": [{"kind": "velocity", "params": {"max_movements_per_hour": "1"}}]},
            "rules[0].params.max_movements_per_hour",
            "must be an integer >= 2",
        ),
        (
            {"rules": [{"kind": "large_amount", "params": {"threshold": 0.5}}]},
            "rules[0].params.threshold",
            "must be a number",
        ),  # a JSON float: never read
        (
            {"rules": [{"kind": "large_amount", "params": {"threshold": "0"}}]},
            "rules[0].params.threshold",
            "must be > 0",
        ),
        (
            {"rules": [{"kind": "velocity", "params": {"threshold": "5"}}]},
            "rules[0].params.threshold",
            "unknown parameter",
        ),
        (
            {"rules": [{"kind": "large_amount", "decision": "ALLOW"}]},
            "rules[0].decision",
            "must be one of REVIEW, BLOCK",
        ),
        (
            {"rules": [{"kind": "large_amount", "score": 101}]},
            "rules[0].score",
            "between 0 and 100",
        ),
        (
            {"rules": [{"kind": "large_amount"}, {"kind": "large_amount"}]},
            "rules[1].id",
            "used twice",
        ),
        ({"rules": [{"kind": "large_amount", "id": BLOCK_LIST}]}, "rules[0].id", "must be"),
        (
            {"rules": [{"kind": "large_amount", "reason": "{description.__class__}"}]},
            "rules[0].reason",
            "may only use the fields",
        ),
        (
            {"rules": [{"kind": "large_amount", "reason": "{amount!r}"}]},
            "rules[0].reason",
            "may only use the fields",
        ),
        (
            {"rules": [{"kind": "large_amount", "params": {"currency_thresholds": {"usd": "1"}}}]},
            "rules[0].params.currency_thresholds",
            "ISO 4217",
        ),
        (
            {"rules": [{"kind": "structuring", "params": {"band_floor": "1"}}]},
            "rules[0].params.band_floor",
            "must be > 0 and < 1",
        ),
        ({"rules": [{"kind": "large_amount", "when": "always"}]}, "rules[0].when", "unknown key"),
    ],
)
def test_invalid_rule_sets_are_refused_naming_the_field(
    document: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(RuleSetError) as raised:
        parse_rule_set(document)
    assert raised.value.field == field
    assert message in str(raised.value)


def test_the_document_round_trips_through_json_exactly() -> None:
    seed = rule_set_from_config(load_config({})).rules
    document = to_document(seed)
    assert to_document(parse_rule_set(json.loads(json.dumps(document)))) == document
    assert document["rules"][1]["params"]["band_floor"] == "0.9"  # a string, never a float


def test_the_seed_set_scores_exactly_like_the_configuration() -> None:
    config = load_config({})
    seeded = RuleSet(
        version="1", rules=parse_rule_set(to_document(rule_set_from_config(config).rules))
    )
    by_config = evaluate(*everything_at_once(), config)
    by_data = evaluate_rule_set(*everything_at_once(), seeded)
    assert by_data.reasons == by_config.reasons
    assert (by_data.score, by_data.decision, by_data.rules_version) == (100, Decision.REVIEW, "1")


# --- each kind at its boundaries, built from a document ---


def test_large_amount_per_currency_thresholds_from_data() -> None:
    rules = rule_set(
        {
            "id": "large",
            "kind": "large_amount",
            "params": {"threshold": "500", "currency_thresholds": {"JPY": "75000"}},
        }
    )
    assert hit_ids(verdict_of(rules, 49_999)) == []
    assert hit_ids(verdict_of(rules, 50_000)) == ["large"]
    assert hit_ids(verdict_of(rules, 74_999, "JPY")) == []
    assert hit_ids(verdict_of(rules, 75_000, "JPY")) == ["large"]
    assert hit_ids(verdict_of(rules, 499_999, "KWD")) == []
    assert hit_ids(verdict_of(rules, 500_000, "KWD")) == ["large"]


def test_structuring_boundaries_from_data() -> None:
    rules = rule_set(
        {
            "kind": "structuring",
            "params": {"threshold": "1000", "band_floor": "0.8", "min_count": 2},
        }
    )
    # band [800.00, 1000.00); two in the band must sum to at least 1000.00
    assert hit_ids(verdict_of(rules, 79_999, recent_day_amounts_minor=(90_000,))) == []
    assert hit_ids(verdict_of(rules, 80_000, recent_day_amounts_minor=(90_000,))) == ["structuring"]
    assert hit_ids(verdict_of(rules, 99_999, recent_day_amounts_minor=(100_000,))) == []


def test_velocity_boundary_from_data() -> None:
    rules = rule_set({"kind": "velocity", "params": {"max_movements_per_hour": "3"}})
    assert hit_ids(verdict_of(rules, 100, count_last_hour=1)) == []
    assert hit_ids(verdict_of(rules, 100, count_last_hour=2)) == ["velocity"]


def test_new_account_boundaries_from_data() -> None:
    rules = rule_set(
        {
            "kind": "new_account",
            "params": {
                "threshold": "1000",
                "max_age_seconds": "3600",
                "amount_fraction_of_threshold": "0.25",
            },
        }
    )
    assert hit_ids(verdict_of(rules, 25_000, account_age_seconds=3_600)) == []
    assert hit_ids(verdict_of(rules, 24_999, account_age_seconds=3_599)) == []
    assert hit_ids(verdict_of(rules, 25_000, account_age_seconds=3_599)) == ["new_account"]


def test_balance_share_boundaries_from_data() -> None:
    rules = rule_set(
        {
            "kind": "balance_share",
            "params": {
                "threshold": "1000",
                "min_share": "0.5",
                "min_amount_fraction_of_threshold": "0.1",
            },
        }
    )
    out = MovementType.WITHDRAWAL
    assert hit_ids(verdict_of(rules, 10_000, kind=out, balance_minor=20_001)) == []
    assert hit_ids(verdict_of(rules, 10_000, kind=out, balance_minor=20_000)) == ["balance_share"]
    # 50% of a small balance, but under 10% of the threshold (100.00)
    assert hit_ids(verdict_of(rules, 9_999, kind=out, balance_minor=10_000)) == []


def test_instances_carry_their_own_decision_score_and_reason() -> None:
    rules = rule_set(
        {
            "id": "big",
            "kind": "large_amount",
            "params": {"threshold": "500"},
            "score": 10,
            "reason": "{rule_id}: {amount} {currency} ({kind})",
        },
        {
            "id": "huge",
            "kind": "large_amount",
            "params": {"threshold": "5000"},
            "score": 90,
            "decision": "BLOCK",
        },
    )
    small = verdict_of(rules, 60_000)
    assert [(h.rule_id, h.description, h.score) for h in small.reasons] == [
        ("big", "big: 600.00 USD (large_amount)", 10)
    ]
    assert (small.decision, small.rules_version) == (Decision.REVIEW, "7")
    large = verdict_of(rules, 500_000)
    assert hit_ids(large) == ["big", "huge"]
    assert (large.decision, large.score) == (Decision.BLOCK, 100)


def test_fifty_rules_are_all_evaluated() -> None:
    rules = rule_set(
        *(
            {
                "id": f"large_{n}",
                "kind": "large_amount",
                "params": {"threshold": str(100 + n)},
                "score": 1,
            }
            for n in range(50)
        )
    )
    verdict = verdict_of(rules, 12_500)  # 125.00: at or above thresholds 100..125
    assert len(verdict.reasons) == 26
    assert verdict.score == 26


# --- lists and their precedence ---

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LISTS = Lists(
    snoozed={
        "weekly": (
            ("new_account", NOW + timedelta(days=7)),
            ("large_amount", NOW + timedelta(days=1)),
        ),
        "mallory": (("large_amount", NOW + timedelta(days=7)),),
    },
    blocked=frozenset({"mallory"}),
    allowed={
        "payroll": frozenset({"large_amount"}),
        "trusted": frozenset({ALL_RULES}),
        "mallory": frozenset({ALL_RULES}),
    },
)


def test_block_list_blocks_a_sender_or_recipient_and_beats_the_allow_list() -> None:
    rules = rule_set({"kind": "large_amount"})
    assert LISTS.match(username="mallory", counterparty="bob", now=NOW).blocked == "sender mallory"
    assert (
        LISTS.match(username="bob", counterparty="mallory", now=NOW).blocked == "recipient mallory"
    )
    verdict = evaluate_rule_set(
        movement(100), features(), rules, LISTS.match(username="mallory", counterparty="", now=NOW)
    )
    assert (verdict.decision, verdict.score, hit_ids(verdict)) == (
        Decision.BLOCK,
        100,
        [BLOCK_LIST],
    )


def test_allow_list_skips_only_the_rules_it_names_for_the_sender() -> None:
    rules = rule_set({"kind": "large_amount"}, {"kind": "new_account"})
    young = {"account_age_seconds": 10}
    payroll = LISTS.match(username="payroll", counterparty="", now=NOW)
    verdict = evaluate_rule_set(movement(1_000_000), features(**young), rules, payroll)
    assert hit_ids(verdict) == ["new_account"]
    trusted = LISTS.match(username="trusted", counterparty="", now=NOW)
    assert evaluate_rule_set(movement(1_000_000), features(**young), rules, trusted).reasons == ()
    # the recipient's allow entry does not exempt the sender
    to_trusted = LISTS.match(username="bob", counterparty="trusted", now=NOW)
    assert to_trusted == ListMatch()


def test_a_snooze_skips_its_rules_until_it_expires_and_never_unblocks() -> None:
    rules = rule_set({"kind": "large_amount"}, {"kind": "new_account"})
    young = features(account_age_seconds=10)

    def hits(username: str, now: datetime) -> list[str]:
        match = LISTS.match(username=username, counterparty="", now=now)
        return hit_ids(evaluate_rule_set(movement(1_000_000), young, rules, match))

    # weekly: large_amount snoozed for 1 day, new_account for 7; each expires by itself
    assert hits("weekly", NOW) == []
    assert hits("weekly", NOW + timedelta(days=1) - timedelta(microseconds=1)) == []
    assert hits("weekly", NOW + timedelta(days=1)) == ["large_amount"]
    assert hits("weekly", NOW + timedelta(days=7)) == ["large_amount", "new_account"]
    assert hits("mallory", NOW) == [BLOCK_LIST]


def test_rulesets_module_imports_no_grpc_and_no_sql() -> None:
    probe = (
        "import sys, fraud_service.rulesets; "
        "sys.exit(any(name.split('.')[0] in {'grpc', 'google', 'sqlalchemy'} "
        "for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
