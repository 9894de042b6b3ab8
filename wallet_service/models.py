"""Plain records passed between the store, the domain and the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from common.fraud_wire import FeatureFields


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class TxType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    REVERSAL = "reversal"


class TxStatus(StrEnum):
    COMPLETED = "completed"
    REJECTED = "rejected"


class Decision(StrEnum):
    ALLOW = "ALLOW"
    REVIEW = "REVIEW"
    BLOCK = "BLOCK"
    UNSCORED = "UNSCORED"  # the fraud service was down or late and FRAUD_FAIL_MODE=open


class ReviewStatus(StrEnum):
    PENDING = "pending"
    CLEARED = "cleared"
    CONFIRMED_FRAUD = "confirmed_fraud"


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime | None) -> str:
    if value is None:
        return ""
    return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: Role
    created_at: datetime
    deleted_at: datetime | None
    password_hash: str = field(repr=False)
    credentials_version: int = 0  # see schema.users.credentials_version
    frozen_at: datetime | None = None
    frozen_by: str | None = None  # the admin's user id
    frozen_reason: str | None = None
    email: str | None = None  # the user's own notification address, when they gave one

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None


@dataclass(frozen=True)
class FraudReason:
    rule_id: str
    description: str


@dataclass(frozen=True)
class FraudVerdict:
    score: int
    decision: Decision
    reasons: tuple[FraudReason, ...] = ()
    rules_version: str = ""

    @property
    def flagged(self) -> bool:
        return self.decision is not Decision.ALLOW


@dataclass(frozen=True)
class Transaction:
    id: str
    type: TxType
    status: TxStatus
    currency: str
    amount_minor: int
    from_user_id: str | None
    from_username: str | None
    to_user_id: str | None
    to_username: str | None
    initiated_by: str
    idempotency_key: str | None
    request_fingerprint: str | None
    created_at: datetime
    deleted_at: datetime | None
    verdict: FraudVerdict | None
    flagged: bool
    review_status: ReviewStatus | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None
    reverses_transaction_id: str | None
    reversed_by_transaction_id: str | None
    initiator_balance_after_minor: int | None
    note: str | None = None
    initiated_by_service: str | None = None  # the service account that acted for the user

    def involves(self, user_id: str) -> bool:
        return user_id in (self.from_user_id, self.to_user_id, self.initiated_by)


@dataclass(frozen=True)
class MovementPlan:
    """One money movement, fully decided, ready to be written atomically.

    `debit_user_id`/`credit_user_id` of None mean the currency's external account
    (money entering or leaving the system).
    """

    tx_id: str
    type: TxType
    currency: str
    amount_minor: int
    debit_user_id: str | None
    credit_user_id: str | None
    debit_username: str | None
    credit_username: str | None
    initiated_by: str
    idempotency_key: str | None
    request_fingerprint: str | None
    verdict: FraudVerdict | None
    created_at: datetime
    reverses_transaction_id: str | None = None
    # Whose balance the caller is told about afterwards (the initiator, or for a reversal the
    # account that got its money back).
    report_balance_of: str | None = None
    note: str | None = None
    # What the scorer was sent; stored with the transaction for backtests.
    features: MovementFeatures | None = None
    initiated_by_service: str | None = None  # the service account acting for initiated_by

    def __post_init__(self) -> None:
        # A plan is built from already-validated input; these guard the ledger against a
        # programming error (a zero entry, or money moved from an account to itself).
        if self.amount_minor <= 0:
            raise ValueError(f"a movement amount must be positive, got {self.amount_minor}")
        if self.debit_user_id == self.credit_user_id:
            raise ValueError("a movement must debit and credit different accounts")

    @property
    def rejected(self) -> bool:
        """Blocked by fraud rules: recorded as rejected, moves nothing."""
        return self.verdict is not None and self.verdict.decision is Decision.BLOCK


@dataclass(frozen=True)
class MovementOutcome:
    transaction: Transaction
    balance_after_minor: int
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class MovementFeatures(FeatureFields):
    """What the fraud rules see of the user's recent history in one currency."""


@dataclass(frozen=True)
class ScoredTransaction:
    """A scored movement with the features it was scored with (what a backtest replays)."""

    transaction: Transaction
    features: MovementFeatures


@dataclass(frozen=True)
class TransactionQuery:
    """Filters of a listing. `user_id` None means every user's (admin listings only)."""

    user_id: str | None
    limit: int
    after_id: str | None = None  # cursor: continue strictly below this id
    currency: str | None = None
    type: TxType | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_deleted: bool = False
    flagged_only: bool = False
    review_status: ReviewStatus | None = None


@dataclass(frozen=True)
class ServiceAccount:
    """An internal caller (wallet_service.service_accounts). Only hashes of its secrets."""

    id: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    created_by: str
    secret_hash: str = field(repr=False)
    previous_secret_hash: str | None = field(default=None, repr=False)
    previous_secret_expires_at: datetime | None = None
    credentials_version: int = 0
    disabled_at: datetime | None = None
    disabled_by: str | None = None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None
