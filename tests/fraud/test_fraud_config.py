"""The rules file and the environment: what is accepted, and what stops the service."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from common.config import ConfigError
from fraud_service.config import DEFAULT_RULES_FILE, load_config, load_rules_file
from fraud_service.rules import Decision, FraudConfig
from fraud_service.settings import FraudSettings


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_rules_file_states_the_code_defaults() -> None:
    packaged = load_rules_file(DEFAULT_RULES_FILE)
    assert packaged.rules_version
    assert dataclasses.replace(packaged, rules_version=FraudConfig().rules_version) == FraudConfig()


def test_without_environment_the_packaged_file_is_used() -> None:
    config = load_config({})
    assert config == load_rules_file(DEFAULT_RULES_FILE)
    assert config.threshold == Decimal("10000")


def test_a_partial_file_keeps_defaults_for_what_it_omits(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        'rules_version = "strict-1"\n'
        "threshold = 2500.50\n"
        "[currency_thresholds]\nJPY = 1500000\n"
        '[rules.velocity]\ndecision = "block"\nmax_movements_per_hour = 5\n',
    )
    config = load_config({"FRAUD_RULES_FILE": str(path)})
    assert config.rules_version == "strict-1"
    assert config.threshold == Decimal("2500.50")
    assert config.threshold_for("JPY") == Decimal("1500000")
    assert config.threshold_for("USD") == Decimal("2500.50")
    assert config.velocity.decision is Decision.BLOCK
    assert config.velocity.max_movements_per_hour == 5
    assert config.velocity.score == FraudConfig().velocity.score
    assert config.structuring == FraudConfig().structuring


def test_fractions_are_read_exactly_not_as_floats(tmp_path: Path) -> None:
    path = write_rules(tmp_path, 'rules_version = "x"\n[rules.balance_share]\nmin_share = 0.95\n')
    min_share = load_rules_file(path).balance_share.min_share
    assert isinstance(min_share, Decimal)
    assert min_share == Decimal("0.95")


def test_threshold_env_overrides_the_file_and_is_visible_in_the_version() -> None:
    config = load_config({"FRAUD_THRESHOLD": "5000.50"})
    packaged = load_rules_file(DEFAULT_RULES_FILE)
    assert config.threshold == Decimal("5000.50")
    assert config.rules_version == f"{packaged.rules_version}+threshold=5000.50"


def test_threshold_env_equal_to_the_file_keeps_the_version() -> None:
    assert load_config({"FRAUD_THRESHOLD": "10000"}) == load_rules_file(DEFAULT_RULES_FILE)


def test_threshold_env_leaves_currency_overrides_alone(tmp_path: Path) -> None:
    path = write_rules(tmp_path, 'rules_version = "x"\n[currency_thresholds]\nJPY = 1500000\n')
    config = load_config({"FRAUD_RULES_FILE": str(path), "FRAUD_THRESHOLD": "3000"})
    assert config.threshold_for("USD") == Decimal("3000")
    assert config.threshold_for("JPY") == Decimal("1500000")


@pytest.mark.parametrize(
    "raw", ["abc", "-5", "0", "0.00", "1e4", "NaN", "Infinity", "10,000", "1.1234567", "1" * 17]
)
def test_invalid_threshold_env_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="FRAUD_THRESHOLD"):
        load_config({"FRAUD_THRESHOLD": raw})


VALID_HEAD = 'rules_version = "t"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threshold = 10\n", "rules_version is required"),
        ('rules_version = ""\n', "rules_version must be a non-empty string"),
        (VALID_HEAD + "threshhold = 10\n", "unknown key 'threshhold'"),
        (VALID_HEAD + "threshold = -1\n", "threshold must be > 0"),
        (VALID_HEAD + "threshold = 0\n", "threshold must be > 0"),
        (VALID_HEAD + "threshold = inf\n", "threshold must be a finite number"),
        (VALID_HEAD + "threshold = nan\n", "threshold must be a finite number"),
        (VALID_HEAD + 'threshold = "10000"\n', "threshold must be a number"),
        (VALID_HEAD + "threshold = true\n", "threshold must be a number"),
        (VALID_HEAD + "threshold = 1e16\n", "threshold must be > 0 and <= "),
        (VALID_HEAD + "threshold = 10.1234567\n", "more than 6 decimal places"),
        (VALID_HEAD + "[currency_thresholds]\nusd = 5\n", "'usd' must be an ISO 4217 code"),
        (VALID_HEAD + "[currency_thresholds]\nJPY = -5\n", "currency_thresholds.JPY must be > 0"),
        (VALID_HEAD + "rules = 5\n", "rules must be a table"),
        (VALID_HEAD + "[rules.velocityy]\n", "unknown key 'rules.velocityy'"),
        (VALID_HEAD + "[rules.velocity]\nmax_per_hour = 5\n", "'rules.velocity.max_per_hour'"),
        (VALID_HEAD + '[rules.velocity]\ndecision = "ALLOW"\n', "must be one of REVIEW, BLOCK"),
        (VALID_HEAD + '[rules.velocity]\ndecision = "DENY"\n', "must be one of REVIEW, BLOCK"),
        (VALID_HEAD + "[rules.velocity]\nscore = 101\n", "between 0 and 100, got 101"),
        (VALID_HEAD + "[rules.velocity]\nscore = -1\n", "between 0 and 100, got -1"),
        (VALID_HEAD + "[rules.velocity]\nscore = 50.5\n", "between 0 and 100"),
        (VALID_HEAD + '[rules.velocity]\nenabled = "yes"\n', "enabled must be true or false"),
        (VALID_HEAD + "[rules.velocity]\nmax_movements_per_hour = 1\n", "integer >= 2"),
        (VALID_HEAD + "[rules.structuring]\nmin_count = 1\n", "min_count must be an integer >= 2"),
        (VALID_HEAD + "[rules.structuring]\nband_floor = 1.0\n", "band_floor must be > 0 and < 1"),
        (VALID_HEAD + "[rules.new_account]\nmax_age_seconds = -1\n", "integer >= 1, got -1"),
        (VALID_HEAD + "[rules.balance_share]\nmin_share = 0\n", "min_share must be > 0 and <= 1"),
        (VALID_HEAD + "[rules.balance_share]\nmin_share = 1.5\n", "min_share must be > 0 and <= 1"),
        (VALID_HEAD + "threshold = \n", "is not valid TOML"),
    ],
)
def test_invalid_rules_file_is_refused_with_a_clear_message(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_rules(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config({"FRAUD_RULES_FILE": str(path)})
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_rules_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"cannot read fraud rules file {missing}"):
        load_config({"FRAUD_RULES_FILE": str(missing)})


def test_settings_defaults() -> None:
    settings = FraudSettings.from_env({})
    assert (settings.addr, settings.max_workers, settings.grace_seconds, settings.log_level) == (
        "127.0.0.1:50052",
        8,
        5.0,
        "info",
    )
    assert settings.rules == load_config({})


def test_settings_read_the_environment(tmp_path: Path) -> None:
    path = write_rules(tmp_path, 'rules_version = "env-test"\n')
    settings = FraudSettings.from_env(
        {
            "FRAUD_ADDR": "0.0.0.0:6000",
            "FRAUD_MAX_WORKERS": "3",
            "FRAUD_GRACE_SECONDS": "1.5",
            "LOG_LEVEL": "DEBUG",
            "FRAUD_RULES_FILE": str(path),
        }
    )
    assert (settings.addr, settings.max_workers, settings.grace_seconds) == ("0.0.0.0:6000", 3, 1.5)
    assert settings.log_level == "debug"
    assert settings.rules.rules_version == "env-test"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FRAUD_MAX_WORKERS", "0"),
        ("FRAUD_MAX_WORKERS", "many"),
        ("FRAUD_GRACE_SECONDS", "-1"),
        ("LOG_LEVEL", "loud"),
        ("FRAUD_THRESHOLD", "-1"),
    ],
)
def test_settings_refuse_invalid_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        FraudSettings.from_env({name: value})
