"""common.records.build: a record from another by field name, with nothing silently left out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fraud.v1 import fraud_pb2

from common.records import build


@dataclass(frozen=True)
class Hits:
    rule_id: str
    hits: int
    live_hits: int = 0
    confirmed_fraud_hits: int = 0
    cleared_hits: int = 0
    seen: list[str] = field(default_factory=list, init=False)


def test_a_dataclass_is_built_from_a_message_and_back() -> None:
    message = fraud_pb2.RuleBacktest(rule_id="velocity", hits=3, live_hits=2, cleared_hits=1)
    hits = build(Hits, message)
    assert hits == Hits("velocity", 3, 2, 0, 1)
    assert build(fraud_pb2.RuleBacktest, hits) == message


def test_given_values_replace_the_sources() -> None:
    message = fraud_pb2.RuleBacktest(rule_id="velocity", hits=3)
    assert build(Hits, message, rule_id="structuring").rule_id == "structuring"


def test_a_field_the_source_lacks_fails_instead_of_defaulting() -> None:
    @dataclass(frozen=True)
    class Partial:
        rule_id: str

    with pytest.raises(AttributeError, match="hits"):
        build(fraud_pb2.RuleBacktest, Partial("velocity"))


def test_a_value_for_no_field_is_refused() -> None:
    message = fraud_pb2.RuleBacktest(rule_id="velocity")
    with pytest.raises(TypeError, match="hitz"):
        build(Hits, message, hitz=1)


def test_only_dataclasses_and_messages_are_targets() -> None:
    with pytest.raises(TypeError, match="neither"):
        build(dict, object())
