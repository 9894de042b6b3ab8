"""Rule sets as data: validate a document into rule instances, and back into a document.

A rule set document is a list of rule instances, each built from the fixed library of
kinds in `fraud_service.rules` (never evaluated code):

    {"rules": [{"id": "large_usd", "kind": "large_amount", "decision": "REVIEW",
                "score": 50, "reason": "{description}",
                "params": {"threshold": "500", "currency_thresholds": {"JPY": "75000"}}}]}

Numbers may be JSON integers or decimal strings ("0.9"), never floats, so parameters are
exact. Every refusal is a RuleSetError naming the field (`rules[0].params.threshold`).
Pure: no SQL, no gRPC. The document stored by the fraud store is `to_document(...)` of
the validated instances, so what is stored is always canonical and valid.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from common.config import ConfigError
from fraud_service.config import (
    RULE_PARAMS,
    parse_currency_thresholds,
    parse_decision,
    parse_score,
    parse_threshold,
)
from fraud_service.rules import (
    BLOCK_LIST,
    DEFAULT_REASON,
    KIND_FUNCTIONS,
    VELOCITY,
    WINDOW_AGGREGATE,
    FraudConfig,
    Measure,
    RuleInstance,
)

MAX_RULES = 200
MAX_REASON_LENGTH = 500
_RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,18}\.[0-9]{1,18}")
KINDS = tuple(KIND_FUNCTIONS)
# Kinds whose parameters are relative to a threshold (velocity counts movements only; a
# windowed aggregate has its own limit).
THRESHOLD_KINDS = frozenset(KINDS) - {VELOCITY, WINDOW_AGGREGATE}
REASON_FIELDS = frozenset({"description", "rule_id", "kind", "amount", "currency"})
_RULE_KEYS = frozenset({"id", "kind", "decision", "score", "reason", "params"})


class RuleSetError(ValueError):
    """A rule set document is invalid; `field` names where (`rules[2].params.min_count`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_rule_set(document: Mapping[str, Any]) -> tuple[RuleInstance, ...]:
    unknown = sorted(set(document) - {"rules"})
    if unknown:
        raise RuleSetError(unknown[0], f"unknown key '{unknown[0]}' (expected: rules)")
    rules = document.get("rules")
    if not isinstance(rules, Sequence) or isinstance(rules, str | bytes):
        raise RuleSetError("rules", "rules must be a list of rule instances")
    if not rules:
        raise RuleSetError("rules", "rules must not be empty: a rule set needs at least one rule")
    if len(rules) > MAX_RULES:
        raise RuleSetError("rules", f"rules has {len(rules)} entries, at most {MAX_RULES}")
    instances = tuple(_parse_rule(raw, f"rules[{index}]") for index, raw in enumerate(rules))
    seen: set[str] = set()
    for index, instance in enumerate(instances):
        if instance.rule_id in seen:
            raise RuleSetError(
                f"rules[{index}].id", f"rules[{index}].id {instance.rule_id!r} is used twice"
            )
        seen.add(instance.rule_id)
    return instances


def _parse_rule(raw: object, where: str) -> RuleInstance:
    if not isinstance(raw, Mapping):
        raise RuleSetError(where, f"{where} must be an object")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        expected = ", ".join(sorted(_RULE_KEYS))
        raise RuleSetError(
            f"{where}.{unknown[0]}", f"unknown key '{where}.{unknown[0]}' (expected: {expected})"
        )
    kind = raw.get("kind")
    if kind not in KINDS:
        raise RuleSetError(
            f"{where}.kind", f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}"
        )
    rule_id = raw.get("id", kind)
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id) or rule_id == BLOCK_LIST:
        raise RuleSetError(
            f"{where}.id",
            f"{where}.id must be 1-64 of a-z, 0-9, _ starting with a letter "
            f"(not {BLOCK_LIST!r}), got {rule_id!r}",
        )
    params = _parse_params(kind, raw.get("params", {}), f"{where}.params")
    defaults = params.settings_for(kind)
    return RuleInstance(
        rule_id=rule_id,
        kind=kind,
        decision=_field(
            parse_decision, raw.get("decision", defaults.decision.name), where, "decision"
        ),
        score=_field(parse_score, _number(raw.get("score", defaults.score)), where, "score"),
        reason=_parse_reason(raw.get("reason", DEFAULT_REASON), f"{where}.reason"),
        params=params,
    )


def _field(parser: Any, value: object, where: str, name: str) -> Any:
    key = f"{where}.{name}"
    try:
        return parser(value, key)
    except ConfigError as exc:
        raise RuleSetError(key, str(exc)) from None


def _number(value: object) -> object:
    """Decimal strings become numbers; everything else is left for the parser to refuse."""
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return Decimal(value.strip())
    return value


def _parse_params(kind: str, raw: object, where: str) -> FraudConfig:
    if not isinstance(raw, Mapping):
        raise RuleSetError(where, f"{where} must be an object")
    parsers = RULE_PARAMS[kind]
    allowed = set(parsers) | (
        {"threshold", "currency_thresholds"} if kind in THRESHOLD_KINDS else set()
    )
    unknown = sorted(set(raw) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed)) or "none"
        raise RuleSetError(
            f"{where}.{unknown[0]}",
            f"unknown parameter '{where}.{unknown[0]}' for kind {kind} (expected: {expected})",
        )
    config = FraudConfig()
    values = {
        name: _field(parsers[name], _number(value), where, name)
        for name, value in raw.items()
        if name in parsers
    }
    settings: dict[str, Any] = {kind: dataclasses.replace(config.settings_for(kind), **values)}
    if kind == WINDOW_AGGREGATE:
        _check_count_limit(settings[kind], where)
    threshold = config.threshold
    if "threshold" in raw:
        threshold = _field(parse_threshold, _number(raw["threshold"]), where, "threshold")
    currencies: dict[str, Decimal] = {}
    if "currency_thresholds" in raw:
        table = raw["currency_thresholds"]
        numbers = {k: _number(v) for k, v in table.items()} if isinstance(table, Mapping) else table
        currencies = _field(
            lambda v, _key: parse_currency_thresholds(v), numbers, where, "currency_thresholds"
        )
    # FraudConfig names each kind's settings field by the kind.
    return dataclasses.replace(
        config, threshold=threshold, currency_thresholds=currencies, **settings
    )


def _check_count_limit(settings: Any, where: str) -> None:
    """A count is compared with a whole number of movements."""
    limit = settings.limit
    if settings.measure is Measure.COUNT and limit != limit.to_integral_value():
        raise RuleSetError(
            f"{where}.limit", f"{where}.limit must be a whole number for measure count, got {limit}"
        )


def _parse_reason(raw: object, key: str) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_REASON_LENGTH:
        raise RuleSetError(key, f"{key} must be a non-empty text of at most {MAX_REASON_LENGTH}")
    try:
        parts = list(string.Formatter().parse(raw))
    except ValueError as exc:
        raise RuleSetError(key, f"{key} is not a valid template: {exc}") from None
    allowed = ", ".join(sorted(REASON_FIELDS))
    for _text, name, spec, conversion in parts:
        if name is None:
            continue
        # Plain names only: no attribute or index access, no format spec, no conversion.
        if name not in REASON_FIELDS or spec or conversion:
            raise RuleSetError(
                key,
                f"{key} may only use the fields {{{allowed}}} as plain {{name}}, got {{{name}}}",
            )
    return raw


# --- back to a document (canonical: decimals as strings, every parameter explicit) ---


def _text(value: object) -> object:
    if isinstance(value, Decimal):  # one spelling per number: 500.0 and 500 are "500"
        return f"{value.normalize():f}"
    if isinstance(value, StrEnum):
        return value.value
    return value


def instance_document(instance: RuleInstance) -> dict[str, Any]:
    settings = instance.params.settings_for(instance.kind)
    params: dict[str, Any] = {
        name: _text(getattr(settings, name)) for name in RULE_PARAMS[instance.kind]
    }
    if instance.kind in THRESHOLD_KINDS:
        params["threshold"] = _text(instance.params.threshold)
        params["currency_thresholds"] = {
            code: _text(value)
            for code, value in sorted(instance.params.currency_thresholds.items())
        }
    return {
        "id": instance.rule_id,
        "kind": instance.kind,
        "decision": instance.decision.name,
        "score": instance.score,
        "reason": instance.reason,
        "params": params,
    }


def to_document(instances: Sequence[RuleInstance]) -> dict[str, Any]:
    return {"rules": [instance_document(instance) for instance in instances]}
