"""Each fraud rule alone at its boundaries, then their combination in `evaluate`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from decimal import Decimal

import pytest

from fraud_service.rules import (
    BalanceShareSettings,
    Decision,
    FraudConfig,
    Hit,
    InvalidInput,
    LargeAmountSettings,
    Movement,
    MovementType,
    NewAccountSettings,
    StructuringSettings,
    VelocitySettings,
    balance_share,
    evaluate,
    large_amount,
    minor_at_least,
    new_account,
    structuring,
    velocity,
)
from tests.support import everything_at_once, features, movement

DEFAULTS = FraudConfig()


# --- exact conversion of the threshold ---


@pytest.mark.parametrize(
    ("major", "exponent", "expected"),
    [
        ("10000", 2, 1_000_000),
        ("10000", 0, 10_000),
        ("10000", 3, 10_000_000),
        ("2500.505", 2, 250_051),  # more decimals than the currency: round up, never down
        ("2500.505", 3, 2_500_505),
        ("0.5", 0, 1),
    ],
)
def test_minor_at_least_is_the_exact_ceiling(major: str, exponent: int, expected: int) -> None:
    assert minor_at_least(Decimal(major), exponent) == expected


# --- large amount ---


@pytest.mark.parametrize(
    ("currency", "below", "exactly"),
    [
        ("USD", 999_999, 1_000_000),  # 9999.99 / 10000.00
        ("JPY", 9_999, 10_000),  # exponent 0: one yen under
        ("KWD", 9_999_999, 10_000_000),  # exponent 3: 9999.999 / 10000.000
        ("KWD", 9_999_990, 10_000_000),  # threshold - 0.01
        ("XTS", 999_999, 1_000_000),  # unknown currency scores by its exponent
    ],
)
def test_large_amount_boundaries(currency: str, below: int, exactly: int) -> None:
    assert large_amount(movement(below, currency), features(), DEFAULTS) is None
    hit = large_amount(movement(exactly, currency), features(), DEFAULTS)
    assert hit is not None
    assert (hit.rule_id, hit.score, hit.decision) == ("large_amount", 50, Decision.REVIEW)
    assert large_amount(movement(exactly + 1, currency), features(), DEFAULTS) is not None


def test_large_amount_describes_amount_and_threshold() -> None:
    hit = large_amount(movement(1_234_567), features(), DEFAULTS)
    assert hit is not None
    assert hit.description == "amount 12345.67 USD is at or above the 10000 USD threshold"


def test_large_amount_uses_the_currency_override_and_only_for_that_currency() -> None:
    config = dataclasses.replace(DEFAULTS, currency_thresholds={"JPY": Decimal("1500000")})
    assert large_amount(movement(1_499_999, "JPY"), features(), config) is None
    assert large_amount(movement(1_500_000, "JPY"), features(), config) is not None
    assert large_amount(movement(1_000_000, "USD"), features(), config) is not None


def test_large_amount_threshold_with_more_decimals_than_the_currency() -> None:
    config = dataclasses.replace(DEFAULTS, threshold=Decimal("2500.505"))
    assert large_amount(movement(250_050), features(), config) is None  # 2500.50 < 2500.505
    assert large_amount(movement(250_051), features(), config) is not None
    assert large_amount(movement(2_500_504, "KWD"), features(), config) is None
    assert large_amount(movement(2_500_505, "KWD"), features(), config) is not None


# --- velocity ---


@pytest.mark.parametrize(("count_last_hour", "hits"), [(8, False), (9, True), (10, True)])
def test_velocity_counts_this_movement_against_the_limit(count_last_hour: int, hits: bool) -> None:
    hit = velocity(movement(100), features(count_last_hour=count_last_hour), DEFAULTS)
    assert (hit is not None) == hits


def test_velocity_limit_is_configurable() -> None:
    config = dataclasses.replace(DEFAULTS, velocity=VelocitySettings(max_movements_per_hour=3))
    assert velocity(movement(100), features(count_last_hour=1), config) is None
    hit = velocity(movement(100), features(count_last_hour=2), config)
    assert hit is not None
    assert hit.description == "3 movements in the last hour (limit 3)"


# --- structuring (default band for USD: [9000.00, 10000.00)) ---


def structuring_hit(
    current: int, previous: tuple[int, ...], currency: str = "USD", config: FraudConfig = DEFAULTS
) -> Hit | None:
    return structuring(
        movement(current, currency), features(recent_day_amounts_minor=previous), config
    )


def test_structuring_hits_at_the_band_floor() -> None:
    hit = structuring_hit(900_000, (950_000, 950_000))
    assert hit is not None
    assert hit.rule_id == "structuring"
    assert hit.score == 70
    assert hit.description == (
        "3 movements just under the 10000 USD threshold in 24 h sum to 28000.00 USD"
    )


def test_structuring_ignores_a_movement_just_below_the_band() -> None:
    assert structuring_hit(899_999, (950_000, 950_000)) is None


def test_structuring_band_includes_threshold_minus_one_cent() -> None:
    assert structuring_hit(999_999, (950_000, 950_000)) is not None


def test_structuring_band_excludes_the_threshold_itself() -> None:
    assert structuring_hit(1_000_000, (950_000, 950_000)) is None
    assert structuring_hit(950_000, (1_000_000, 950_000)) is None


def test_structuring_counts_earlier_movements_in_the_band_only() -> None:
    assert structuring_hit(100, (950_000, 500_000, 1_200_000)) is None
    assert structuring_hit(100, (950_000, 950_000, 950_000)) is not None


@pytest.mark.parametrize(
    ("currency", "floor", "top"),
    [("JPY", 9_000, 9_999), ("KWD", 9_000_000, 9_999_999)],
)
def test_structuring_band_in_other_exponents(currency: str, floor: int, top: int) -> None:
    assert structuring_hit(floor, (top, top), currency) is not None
    assert structuring_hit(floor - 1, (top, top), currency) is None
    assert structuring_hit(top + 1, (floor, floor), currency) is None


def test_structuring_band_floor_is_exact_when_it_falls_between_minor_units() -> None:
    # 0.9 x 10000.01 = 9000.009 USD, so the band starts at 9000.01
    config = dataclasses.replace(DEFAULTS, threshold=Decimal("10000.01"))
    assert structuring_hit(900_000, (950_000, 950_000), config=config) is None
    assert structuring_hit(900_001, (950_000, 950_000), config=config) is not None


def test_structuring_needs_the_sum_to_reach_the_threshold() -> None:
    # A wide band makes the sum condition bite: [3000.00, 10000.00)
    wide = dataclasses.replace(DEFAULTS, structuring=StructuringSettings(band_floor=Decimal("0.3")))
    assert structuring_hit(399_999, (300_000, 300_000), config=wide) is None  # 9999.99
    assert structuring_hit(400_000, (300_000, 300_000), config=wide) is not None  # 10000.00


def test_structuring_min_count_is_configurable() -> None:
    config = dataclasses.replace(DEFAULTS, structuring=StructuringSettings(min_count=4))
    assert structuring_hit(950_000, (950_000, 950_000)) is not None
    assert structuring_hit(950_000, (950_000, 950_000), config=config) is None
    assert structuring_hit(950_000, (950_000,) * 3, config=config) is not None


# --- new account (defaults: younger than 86400 s, amount >= 0.5 x threshold) ---


@pytest.mark.parametrize(
    ("currency", "half_threshold"),
    [("USD", 500_000), ("JPY", 5_000), ("KWD", 5_000_000)],
)
def test_new_account_amount_boundary(currency: str, half_threshold: int) -> None:
    young = features(account_age_seconds=86_399)
    assert new_account(movement(half_threshold - 1, currency), young, DEFAULTS) is None
    assert new_account(movement(half_threshold, currency), young, DEFAULTS) is not None


@pytest.mark.parametrize(("age", "hits"), [(0, True), (86_399, True), (86_400, False)])
def test_new_account_age_boundary(age: int, hits: bool) -> None:
    hit = new_account(movement(500_000), features(account_age_seconds=age), DEFAULTS)
    assert (hit is not None) == hits


def test_new_account_settings_and_description() -> None:
    config = dataclasses.replace(
        DEFAULTS,
        new_account=NewAccountSettings(
            max_age_seconds=3_600, amount_fraction_of_threshold=Decimal("0.25")
        ),
    )
    assert new_account(movement(250_000), features(account_age_seconds=3_600), config) is None
    hit = new_account(movement(250_000), features(account_age_seconds=60), config)
    assert hit is not None
    assert hit.description == "account is 60 s old and moves 2500.00 USD (at least 2500.00 USD)"


# --- large share of the balance (defaults: >= 90 % of it and >= 0.1 x threshold) ---


def share_hit(
    amount: int,
    balance: int,
    kind: MovementType = MovementType.WITHDRAWAL,
    currency: str = "USD",
) -> Hit | None:
    return balance_share(
        movement(amount, currency, kind), features(balance_minor=balance), DEFAULTS
    )


def test_balance_share_boundary() -> None:
    assert share_hit(899_999, 1_000_000) is None  # 8999.99 of 10000.00
    hit = share_hit(900_000, 1_000_000)
    assert hit is not None
    assert (
        hit.description
        == "withdrawal of 9000.00 USD takes at least 90% of the balance 10000.00 USD"
    )


def test_balance_share_is_exact_when_the_share_falls_between_minor_units() -> None:
    # 0.9 x 10000.01 = 9000.009, so 9000.01 is the least amount that counts
    assert share_hit(900_000, 1_000_001) is None
    assert share_hit(900_001, 1_000_001) is not None


def test_balance_share_applies_to_transfers_but_not_deposits() -> None:
    assert share_hit(900_000, 1_000_000, MovementType.TRANSFER) is not None
    assert share_hit(900_000, 1_000_000, MovementType.DEPOSIT) is None


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [("USD", 100_000), ("JPY", 1_000), ("KWD", 1_000_000)],  # 0.1 x 10000 major units
)
def test_balance_share_ignores_small_amounts(currency: str, minimum: int) -> None:
    assert share_hit(minimum - 1, minimum - 1, currency=currency) is None
    assert share_hit(minimum, minimum, currency=currency) is not None


@pytest.mark.parametrize("balance", [0, -5_000_000])
def test_balance_share_needs_a_positive_balance(balance: int) -> None:
    assert share_hit(900_000, balance) is None


def test_balance_share_settings() -> None:
    config = dataclasses.replace(
        DEFAULTS,
        balance_share=BalanceShareSettings(
            min_share=Decimal("0.5"), min_amount_fraction_of_threshold=Decimal("0.01")
        ),
    )
    withdrawal = movement(10_000, kind=MovementType.WITHDRAWAL)  # 100.00, the new minimum
    assert balance_share(withdrawal, features(balance_minor=20_000), config) is not None
    assert balance_share(withdrawal, features(balance_minor=20_001), config) is None


# --- input validation ---


@pytest.mark.parametrize(
    ("amount", "exponent", "currency"),
    [(0, 2, "USD"), (-1, 2, "USD"), (100, -1, "USD"), (100, 7, "USD"), (100, 2, "")],
)
def test_movement_rejects_nonsense(amount: int, exponent: int, currency: str) -> None:
    with pytest.raises(InvalidInput):
        Movement(
            type=MovementType.DEPOSIT,
            amount_minor=amount,
            currency=currency,
            currency_exponent=exponent,
        )


@pytest.mark.parametrize(
    "overrides",
    [
        {"account_age_seconds": -1},
        {"count_last_hour": -1},
        {"sum_last_day_minor": -1},
        {"recent_day_amounts_minor": (100, -1)},
    ],
)
def test_features_reject_negative_values(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        features(**overrides)


def test_features_accept_a_negative_external_balance() -> None:
    assert features(balance_minor=-10).balance_minor == -10


# --- the combination ---


def test_nothing_suspicious_allows_with_score_zero() -> None:
    verdict = evaluate(movement(10_000), features(), DEFAULTS)
    assert (verdict.score, verdict.decision, verdict.reasons) == (0, Decision.ALLOW, ())
    assert verdict.rules_version == DEFAULTS.rules_version


def test_scores_add_up_below_the_cap() -> None:
    verdict = evaluate(movement(1_000_000), features(account_age_seconds=10), DEFAULTS)
    assert [hit.rule_id for hit in verdict.reasons] == ["large_amount", "new_account"]
    assert verdict.score == 50 + 40
    assert verdict.decision is Decision.REVIEW


def test_all_rules_hit_score_is_capped_and_reasons_keep_a_stable_order() -> None:
    verdict = evaluate(*everything_at_once(), DEFAULTS)
    assert [hit.rule_id for hit in verdict.reasons] == [
        "large_amount",
        "structuring",
        "velocity",
        "new_account",
        "balance_share",
    ]
    assert sum(hit.score for hit in verdict.reasons) > 100
    assert verdict.score == 100
    assert verdict.decision is Decision.REVIEW


def test_decision_is_the_most_severe_among_hits() -> None:
    config = dataclasses.replace(
        DEFAULTS, velocity=VelocitySettings(decision=Decision.BLOCK, score=5)
    )
    verdict = evaluate(*everything_at_once(), config)
    assert verdict.decision is Decision.BLOCK
    only_velocity = evaluate(movement(100), features(count_last_hour=9), config)
    assert (only_velocity.decision, only_velocity.score) == (Decision.BLOCK, 5)


def test_disabled_rules_do_not_contribute() -> None:
    config = dataclasses.replace(DEFAULTS, large_amount=LargeAmountSettings(enabled=False))
    verdict = evaluate(movement(1_000_000), features(), config)
    assert verdict.reasons == ()
    assert verdict.decision is Decision.ALLOW


def test_rules_module_imports_no_grpc() -> None:
    probe = (
        "import sys, fraud_service.rules; "
        "sys.exit(any(name.split('.')[0] in {'grpc', 'google'} for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0
