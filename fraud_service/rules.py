"""Fraud rules: pure functions over a movement and the features the wallet computed.

No gRPC and no I/O here. Each rule returns a `Hit` or None; `evaluate` combines the
hits of the enabled rules into a `Verdict`.

Money stays in integer minor units. The configured threshold is a Decimal in major
units; comparisons against it go through `minor_at_least`, which is exact: for an
integer amount `a`, `a >= x` holds exactly when `a >= ceil(x)`, and likewise
`a < x` exactly when `a < ceil(x)`.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum

from common.fraud_wire import FeatureFields

# ISO 4217 goes up to 4 decimals; a little headroom, but bounded so the
# scaling below stays small and exact.
MAX_CURRENCY_EXPONENT = 6

# Wide enough that every product of validated config values is exact; Inexact
# is trapped so a future change that breaks this fails loudly instead of rounding.
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation])


class InvalidInput(ValueError):
    """The movement or its features cannot be scored (the caller sent nonsense)."""


class Decision(IntEnum):
    """Ordered by severity, so `max()` picks the most severe decision."""

    ALLOW = 0
    REVIEW = 1
    BLOCK = 2


class MovementType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


OUTGOING_TYPES = frozenset({MovementType.WITHDRAWAL, MovementType.TRANSFER})

# Stable rule ids: they travel in every verdict and name the sections of the rules file.
LARGE_AMOUNT = "large_amount"
VELOCITY = "velocity"
STRUCTURING = "structuring"
NEW_ACCOUNT = "new_account"
BALANCE_SHARE = "balance_share"
WINDOW_AGGREGATE = "window_aggregate"


@dataclass(frozen=True, kw_only=True)
class Movement:
    type: MovementType
    amount_minor: int
    currency: str
    currency_exponent: int

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise InvalidInput(f"amount_minor must be positive, got {self.amount_minor}")
        if not 0 <= self.currency_exponent <= MAX_CURRENCY_EXPONENT:
            raise InvalidInput(
                f"currency_exponent must be between 0 and {MAX_CURRENCY_EXPONENT}, "
                f"got {self.currency_exponent}"
            )
        if not self.currency:
            raise InvalidInput("currency is required")


@dataclass(frozen=True, kw_only=True)
class Features(FeatureFields):
    """The user's completed movements in the currency, not counting this one; no count or
    sum below zero."""

    def __post_init__(self) -> None:
        for name in (
            "account_age_seconds",
            "count_last_hour",
            "sum_last_hour_minor",
            "count_last_day",
            "sum_last_day_minor",
            "distinct_counterparties_last_day",
            "count_to_counterparty_last_hour",
            "sum_to_counterparty_last_hour_minor",
            "count_to_counterparty_last_day",
            "sum_to_counterparty_last_day_minor",
        ):
            if getattr(self, name) < 0:
                raise InvalidInput(f"{name} must not be negative, got {getattr(self, name)}")
        if any(amount < 0 for amount in self.recent_day_amounts_minor):
            raise InvalidInput("recent_day_amounts_minor must not contain negative amounts")


@dataclass(frozen=True)
class Hit:
    rule_id: str
    description: str
    score: int
    decision: Decision


@dataclass(frozen=True, kw_only=True)
class RuleSettings:
    """What every rule has: whether it runs, and what a hit means."""

    enabled: bool = True
    decision: Decision = Decision.REVIEW
    score: int

    def hit(self, rule_id: str, description: str) -> Hit:
        return Hit(rule_id, description, self.score, self.decision)


@dataclass(frozen=True, kw_only=True)
class LargeAmountSettings(RuleSettings):
    score: int = 50


@dataclass(frozen=True, kw_only=True)
class VelocitySettings(RuleSettings):
    score: int = 40
    max_movements_per_hour: int = 10


@dataclass(frozen=True, kw_only=True)
class StructuringSettings(RuleSettings):
    score: int = 70
    # The band "just under the threshold" is [band_floor * threshold, threshold).
    band_floor: Decimal = Decimal("0.9")
    min_count: int = 3


@dataclass(frozen=True, kw_only=True)
class NewAccountSettings(RuleSettings):
    score: int = 40
    max_age_seconds: int = 86_400
    amount_fraction_of_threshold: Decimal = Decimal("0.5")


@dataclass(frozen=True, kw_only=True)
class BalanceShareSettings(RuleSettings):
    score: int = 30
    min_share: Decimal = Decimal("0.9")
    # Relative to the threshold so the floor is meaningful in every currency.
    min_amount_fraction_of_threshold: Decimal = Decimal("0.1")


class Measure(StrEnum):
    COUNT = "count"
    SUM = "sum"


class Scope(StrEnum):
    SENDER = "sender"  # every movement of the sender in the currency
    COUNTERPARTY = "counterparty"  # the sender's transfers to this movement's counterparty


class Window(StrEnum):
    """Only the windows the wallet's features carry."""

    HOUR = "1h"
    DAY = "24h"


@dataclass(frozen=True, kw_only=True)
class WindowAggregateSettings(RuleSettings):
    """Count or sum (major units of the movement's currency) over a window, this movement
    included, at or above `limit`. Only in rule sets, never in the TOML file."""

    enabled: bool = False
    score: int = 40
    measure: Measure = Measure.COUNT
    scope: Scope = Scope.SENDER
    window: Window = Window.HOUR
    limit: Decimal = Decimal("10")


@dataclass(frozen=True, kw_only=True)
class FraudConfig:
    rules_version: str = "default"
    threshold: Decimal = Decimal("10000")
    currency_thresholds: Mapping[str, Decimal] = field(default_factory=dict)
    large_amount: LargeAmountSettings = field(default_factory=LargeAmountSettings)
    velocity: VelocitySettings = field(default_factory=VelocitySettings)
    structuring: StructuringSettings = field(default_factory=StructuringSettings)
    new_account: NewAccountSettings = field(default_factory=NewAccountSettings)
    balance_share: BalanceShareSettings = field(default_factory=BalanceShareSettings)
    window_aggregate: WindowAggregateSettings = field(default_factory=WindowAggregateSettings)

    def threshold_for(self, currency: str) -> Decimal:
        return self.currency_thresholds.get(currency.upper(), self.threshold)

    def settings_for(self, rule_id: str) -> RuleSettings:
        by_id: dict[str, RuleSettings] = {
            LARGE_AMOUNT: self.large_amount,
            VELOCITY: self.velocity,
            STRUCTURING: self.structuring,
            NEW_ACCOUNT: self.new_account,
            BALANCE_SHARE: self.balance_share,
            WINDOW_AGGREGATE: self.window_aggregate,
        }
        return by_id[rule_id]


@dataclass(frozen=True)
class Verdict:
    score: int
    decision: Decision
    reasons: tuple[Hit, ...]
    rules_version: str


# --- exact money helpers (this process does not share the wallet's money module) ---


def minor_at_least(major: Decimal, exponent: int) -> int:
    """The smallest integer amount in minor units that is >= `major` major units."""
    scaled = _EXACT.scaleb(major, exponent)
    return int(scaled.to_integral_value(rounding=decimal.ROUND_CEILING))


def display(amount_minor: int, exponent: int) -> str:
    return str(Decimal(amount_minor).scaleb(-exponent))


def _fraction_of(fraction: Decimal, major: Decimal) -> Decimal:
    return _EXACT.multiply(fraction, major)


# --- the rules ---


def large_amount(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    threshold = config.threshold_for(movement.currency)
    if movement.amount_minor < minor_at_least(threshold, movement.currency_exponent):
        return None
    amount = display(movement.amount_minor, movement.currency_exponent)
    return config.large_amount.hit(
        LARGE_AMOUNT,
        f"amount {amount} {movement.currency} is at or above the "
        f"{threshold:f} {movement.currency} threshold",
    )


def velocity(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    settings = config.velocity
    count_with_this = features.count_last_hour + 1
    if count_with_this < settings.max_movements_per_hour:
        return None
    return settings.hit(
        VELOCITY,
        f"{count_with_this} movements in the last hour (limit {settings.max_movements_per_hour})",
    )


def structuring(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    settings = config.structuring
    threshold = config.threshold_for(movement.currency)
    exponent = movement.currency_exponent
    band_low = minor_at_least(_fraction_of(settings.band_floor, threshold), exponent)
    band_high = minor_at_least(threshold, exponent)  # exclusive

    def in_band(amount: int) -> bool:
        return band_low <= amount < band_high

    candidates = (*features.recent_day_amounts_minor, movement.amount_minor)
    near_threshold = [amount for amount in candidates if in_band(amount)]
    total = sum(near_threshold)
    if len(near_threshold) < settings.min_count or total < band_high:
        return None
    return settings.hit(
        STRUCTURING,
        f"{len(near_threshold)} movements just under the {threshold:f} {movement.currency} "
        f"threshold in 24 h sum to {display(total, exponent)} {movement.currency}",
    )


def new_account(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    settings = config.new_account
    if features.account_age_seconds >= settings.max_age_seconds:
        return None
    exponent = movement.currency_exponent
    threshold = config.threshold_for(movement.currency)
    floor = minor_at_least(_fraction_of(settings.amount_fraction_of_threshold, threshold), exponent)
    if movement.amount_minor < floor:
        return None
    return settings.hit(
        NEW_ACCOUNT,
        f"account is {features.account_age_seconds} s old and moves "
        f"{display(movement.amount_minor, exponent)} {movement.currency} "
        f"(at least {display(floor, exponent)} {movement.currency})",
    )


def balance_share(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    settings = config.balance_share
    balance = features.balance_minor
    if movement.type not in OUTGOING_TYPES or balance <= 0:
        return None
    share_floor = minor_at_least(_fraction_of(settings.min_share, Decimal(balance)), 0)
    threshold = config.threshold_for(movement.currency)
    amount_floor = _fraction_of(settings.min_amount_fraction_of_threshold, threshold)
    exponent = movement.currency_exponent
    if movement.amount_minor < max(share_floor, minor_at_least(amount_floor, exponent)):
        return None
    return settings.hit(
        BALANCE_SHARE,
        f"{movement.type} of {display(movement.amount_minor, exponent)} {movement.currency} "
        f"takes at least {settings.min_share:%} of the balance "
        f"{display(balance, exponent)} {movement.currency}",
    )


def _aggregate_before(features: Features, settings: WindowAggregateSettings) -> tuple[int, int]:
    """(count, sum) of the window and scope, not counting this movement."""
    hour = settings.window is Window.HOUR
    if settings.scope is Scope.SENDER:
        if hour:
            return features.count_last_hour, features.sum_last_hour_minor
        return features.count_last_day, features.sum_last_day_minor
    if hour:
        return (
            features.count_to_counterparty_last_hour,
            features.sum_to_counterparty_last_hour_minor,
        )
    return features.count_to_counterparty_last_day, features.sum_to_counterparty_last_day_minor


def window_aggregate(movement: Movement, features: Features, config: FraudConfig) -> Hit | None:
    """Like velocity, this movement counts toward the aggregate: a hit when the count or sum
    with it is at or above the limit. Only transfers have a counterparty to scope by."""
    settings = config.window_aggregate
    if settings.scope is Scope.COUNTERPARTY and movement.type is not MovementType.TRANSFER:
        return None
    count, total = _aggregate_before(features, settings)
    exponent = movement.currency_exponent
    scope = "to this counterparty" if settings.scope is Scope.COUNTERPARTY else "in all"
    if settings.measure is Measure.COUNT:
        if count + 1 < settings.limit:
            return None
        what = f"{count + 1} movements"
        limit = f"{settings.limit:f}"
    else:
        total += movement.amount_minor
        if total < minor_at_least(settings.limit, exponent):
            return None
        what = f"{display(total, exponent)} {movement.currency} moved"
        limit = f"{settings.limit:f} {movement.currency}"
    return settings.hit(
        WINDOW_AGGREGATE, f"{what} {scope} in the last {settings.window} (limit {limit})"
    )


Rule = Callable[[Movement, Features, FraudConfig], Hit | None]

# Evaluation order, which is also the order of the reasons in a verdict.
RULES: tuple[tuple[str, Rule], ...] = (
    (LARGE_AMOUNT, large_amount),
    (STRUCTURING, structuring),
    (VELOCITY, velocity),
    (NEW_ACCOUNT, new_account),
    (BALANCE_SHARE, balance_share),
)
RULE_IDS = tuple(rule_id for rule_id, _ in RULES)


# The kinds of rule set instances: the TOML file's rules plus those only rule sets have.
KIND_FUNCTIONS: Mapping[str, Rule] = {**dict(RULES), WINDOW_AGGREGATE: window_aggregate}
# A verdict's reason when a party is on the block list; never a rule instance's id.
BLOCK_LIST = "block_list"
# An allow-list entry naming this skips every rule instance.
ALL_RULES = "*"


@dataclass(frozen=True, kw_only=True)
class RuleInstance:
    """One rule of a rule set: a kind from the fixed library with its own parameters.

    `params` is a FraudConfig whose threshold, currency thresholds and the settings of
    `kind` are this instance's (the kind functions read exactly those); the instance's
    own decision, score and reason template replace what the kind function reports.
    """

    rule_id: str
    kind: str
    decision: Decision
    score: int
    reason: str
    params: FraudConfig


@dataclass(frozen=True, kw_only=True)
class RuleSet:
    version: str
    rules: tuple[RuleInstance, ...]


@dataclass(frozen=True, kw_only=True)
class ListMatch:
    """What the block and allow lists say about one movement (decided by the caller)."""

    blocked: str | None = None  # who is blocked ("sender alice"), None when nobody is
    skipped_rules: frozenset[str] = frozenset()  # rule ids or kinds; ALL_RULES skips all


NO_LIST_MATCH = ListMatch()


def render_reason(template: str, fields: Mapping[str, str]) -> str:
    """The template with its {names} filled; names were checked when the set was created."""
    return template.format_map(fields)


def _instance_hit(instance: RuleInstance, movement: Movement, features: Features) -> Hit | None:
    hit = KIND_FUNCTIONS[instance.kind](movement, features, instance.params)
    if hit is None:
        return None
    fields = {
        "description": hit.description,
        "rule_id": instance.rule_id,
        "kind": instance.kind,
        "amount": display(movement.amount_minor, movement.currency_exponent),
        "currency": movement.currency,
    }
    description = render_reason(instance.reason, fields)
    return Hit(instance.rule_id, description, instance.score, instance.decision)


def _skipped(instance: RuleInstance, skipped: frozenset[str]) -> bool:
    return bool(skipped & {ALL_RULES, instance.rule_id, instance.kind})


def evaluate_rule_set(
    movement: Movement,
    features: Features,
    rule_set: RuleSet,
    lists: ListMatch = NO_LIST_MATCH,
) -> Verdict:
    """Precedence: the block list first (BLOCK, score 100, reason `block_list`, nothing
    else evaluated: an allow-list entry cannot unblock); then every instance of the set in
    order, except those the allow list or a snooze skips."""
    if lists.blocked is not None:
        block = Hit(BLOCK_LIST, f"{lists.blocked} is on the block list", 100, Decision.BLOCK)
        return Verdict(100, Decision.BLOCK, (block,), rule_set.version)
    hits = tuple(
        hit
        for instance in rule_set.rules
        if not _skipped(instance, lists.skipped_rules)
        and (hit := _instance_hit(instance, movement, features)) is not None
    )
    return Verdict(
        score=min(100, sum(hit.score for hit in hits)),
        decision=max((hit.decision for hit in hits), default=Decision.ALLOW),
        reasons=hits,
        rules_version=rule_set.version,
    )


DEFAULT_REASON = "{description}"


def rule_set_from_config(config: FraudConfig) -> RuleSet:
    """The enabled rules of a FraudConfig (the TOML shape) as a rule set, in RULES order."""
    instances = []
    for kind, _ in RULES:
        settings = config.settings_for(kind)
        if settings.enabled:
            instances.append(
                RuleInstance(
                    rule_id=kind,
                    kind=kind,
                    decision=settings.decision,
                    score=settings.score,
                    reason=DEFAULT_REASON,
                    params=config,
                )
            )
    return RuleSet(version=config.rules_version, rules=tuple(instances))


def evaluate(movement: Movement, features: Features, config: FraudConfig) -> Verdict:
    return evaluate_rule_set(movement, features, rule_set_from_config(config))
