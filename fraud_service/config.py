"""Load and validate the fraud rules configuration (a TOML file plus env overrides).

Every value is checked; anything unexpected (an unknown key, a negative number, a
decision other than REVIEW or BLOCK, a float where an integer belongs) raises
ConfigError naming the key, so a bad deploy stops at start rather than scoring wrong.
Decimals are parsed from TOML as Decimal, never float.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from common.config import ConfigError, env_str
from fraud_service.rules import (
    BALANCE_SHARE,
    LARGE_AMOUNT,
    NEW_ACCOUNT,
    STRUCTURING,
    VELOCITY,
    WINDOW_AGGREGATE,
    Decision,
    FraudConfig,
    Measure,
    RuleSettings,
    Scope,
    Window,
)

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.toml")
MAX_THRESHOLD = Decimal("1000000000000000")  # 10^15 major units
MAX_DECIMAL_PLACES = 6
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_PLAIN_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")

# Any: the schema below is dynamic; each parser has validated its value's type.
Parser = Callable[[object, str], Any]


# --- value parsers: each takes the raw value and its dotted key for messages ---


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _int_at_least(minimum: int) -> Parser:
    def parse(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
        return value

    return parse


def _score(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"{key} must be an integer between 0 and 100, got {value!r}")
    return value


def _decision(value: object, key: str) -> Decision:
    allowed = (Decision.REVIEW.name, Decision.BLOCK.name)
    if not isinstance(value, str) or value.upper() not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return Decision[value.upper()]


def _decimal(value: object, key: str) -> Decimal:
    # bool is an int; Decimal values come from TOML floats (parse_float=Decimal).
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise ConfigError(f"{key} must be a finite number, got {value}")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ConfigError(f"{key} has more than {MAX_DECIMAL_PLACES} decimal places: {value}")
    return number


def _threshold(value: object, key: str) -> Decimal:
    number = _decimal(value, key)
    if not 0 < number <= MAX_THRESHOLD:
        raise ConfigError(f"{key} must be > 0 and <= {MAX_THRESHOLD} major units, got {value}")
    return number


def _fraction(*, below_one: bool = False) -> Parser:
    upper = "< 1" if below_one else "<= 1"

    def parse(value: object, key: str) -> Decimal:
        number = _decimal(value, key)
        if not (0 < number < 1 if below_one else 0 < number <= 1):
            raise ConfigError(f"{key} must be > 0 and {upper}, got {value}")
        return number

    return parse


def _choice(choices: type[Measure | Scope | Window]) -> Parser:
    allowed = [member.value for member in choices]

    def parse(value: object, key: str) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        return choices(value)

    return parse


def _version(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value.strip()


# --- schema ---

_COMMON_RULE_KEYS: dict[str, Parser] = {
    "enabled": _bool,
    "decision": _decision,
    "score": _score,
}

_RULE_PARAMS: dict[str, dict[str, Parser]] = {
    LARGE_AMOUNT: {},
    VELOCITY: {"max_movements_per_hour": _int_at_least(2)},
    # One movement in the band is below the threshold by definition, so 2 is the least.
    STRUCTURING: {"band_floor": _fraction(below_one=True), "min_count": _int_at_least(2)},
    NEW_ACCOUNT: {
        "max_age_seconds": _int_at_least(1),
        "amount_fraction_of_threshold": _fraction(),
    },
    BALANCE_SHARE: {
        "min_share": _fraction(),
        "min_amount_fraction_of_threshold": _fraction(),
    },
}

# The public names fraud_service.rulesets validates rule set documents with. Windowed
# aggregates exist only in rule sets: the TOML file (the seed) keeps the five rules.
# A count limit must also be an integer: rulesets checks that, knowing the measure.
RULE_PARAMS: dict[str, dict[str, Parser]] = {
    **_RULE_PARAMS,
    WINDOW_AGGREGATE: {
        "measure": _choice(Measure),
        "scope": _choice(Scope),
        "window": _choice(Window),
        "limit": _threshold,
    },
}
parse_decision = _decision
parse_score = _score
parse_threshold = _threshold


def parse_currency_thresholds(raw: object) -> dict[str, Decimal]:
    return _parse_currency_thresholds(raw)


_TOP_LEVEL_KEYS = ("rules_version", "threshold", "currency_thresholds", "rules")


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table, got {value!r}")
    return value


def _reject_unknown_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise ConfigError(f"unknown key '{where}{unknown[0]}' (expected one of: {expected})")


def _parse_currency_thresholds(raw: object) -> dict[str, Decimal]:
    table = _table(raw, "currency_thresholds")
    thresholds = {}
    for code, value in table.items():
        if not _CURRENCY_CODE.fullmatch(code):
            raise ConfigError(f"currency_thresholds key {code!r} must be an ISO 4217 code (USD)")
        thresholds[code] = _threshold(value, f"currency_thresholds.{code}")
    return thresholds


def _parse_rule(rule_id: str, raw: object, defaults: FraudConfig) -> RuleSettings:
    table = _table(raw, f"rules.{rule_id}")
    parsers = {**_COMMON_RULE_KEYS, **_RULE_PARAMS[rule_id]}
    _reject_unknown_keys(table, parsers, f"rules.{rule_id}.")
    values: dict[str, Any] = {
        key: parsers[key](value, f"rules.{rule_id}.{key}") for key, value in table.items()
    }
    return dataclasses.replace(defaults.settings_for(rule_id), **values)


def parse_config(raw: Mapping[str, Any]) -> FraudConfig:
    """Build a validated FraudConfig from a parsed TOML document; omitted keys keep defaults."""
    _reject_unknown_keys(raw, _TOP_LEVEL_KEYS, "")
    if "rules_version" not in raw:
        raise ConfigError("rules_version is required")
    defaults = FraudConfig()
    rules = _table(raw.get("rules", {}), "rules")
    _reject_unknown_keys(rules, _RULE_PARAMS, "rules.")
    overrides: dict[str, Any] = {
        rule_id: _parse_rule(rule_id, rules[rule_id], defaults) for rule_id in rules
    }
    # FraudConfig names each rule's settings field by the rule id.
    return dataclasses.replace(
        defaults,
        rules_version=_version(raw["rules_version"], "rules_version"),
        threshold=_threshold(raw.get("threshold", defaults.threshold), "threshold"),
        currency_thresholds=_parse_currency_thresholds(raw.get("currency_thresholds", {})),
        **overrides,
    )


def load_rules_file(path: Path) -> FraudConfig:
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file, parse_float=Decimal)
    except OSError as exc:
        raise ConfigError(f"cannot read fraud rules file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"fraud rules file {path} is not valid TOML: {exc}") from None
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"invalid fraud rules file {path}: {exc}") from None


def parse_threshold_env(raw: str) -> Decimal:
    text = raw.strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ConfigError(
            f"FRAUD_THRESHOLD must be a plain decimal number of major units "
            f"such as 10000 or 2500.50, got {raw!r}"
        )
    return _threshold(Decimal(text), "FRAUD_THRESHOLD")


def load_config(env: Mapping[str, str]) -> FraudConfig:
    """The rules file (FRAUD_RULES_FILE, else the packaged one) with FRAUD_THRESHOLD applied."""
    config = load_rules_file(Path(env_str(env, "FRAUD_RULES_FILE", str(DEFAULT_RULES_FILE))))
    raw_threshold = env.get("FRAUD_THRESHOLD", "").strip()
    if not raw_threshold:
        return config
    threshold = parse_threshold_env(raw_threshold)
    if threshold == config.threshold:
        return config
    # Say so in the version: replicas with different overrides must not look alike.
    return dataclasses.replace(
        config,
        threshold=threshold,
        rules_version=f"{config.rules_version}+threshold={threshold:f}",
    )
