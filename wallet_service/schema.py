"""Table definitions (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Alembic migrations under `wallet_service/migrations/versions/` create exactly this
schema; `tests/wallet/test_migrations.py` checks that the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from common.limits import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_USERNAME_INPUT_LENGTH

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    # As registered, for display.
    Column("username", String(MAX_USERNAME_INPUT_LENGTH), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    # wallet_service.identity.canonical_username(username): the identity, unique.
    Column("username_canonical", String(64), nullable=False),
    # Bumped with every password or role change and by log-out-everywhere; tokens carry the
    # version they were issued under and die when it moves on.
    Column("credentials_version", Integer, nullable=False, server_default=text("0")),
    # Set by an admin's freeze: the user can still log in and read, but moves no money.
    Column("frozen_at", DateTime(timezone=True), nullable=True),
    Column("frozen_by", String(36), ForeignKey("users.id"), nullable=True),
    Column("frozen_reason", Text, nullable=True),
    # Optional, set by the user: where their own notifications go (transfer.received).
    # Shown to the user themself and to admins only.
    Column("email", String(254), nullable=True),
    CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
    UniqueConstraint("username", name="users_username_key"),
)
Index("uq_users_username_canonical", users.c.username_canonical, unique=True)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("owner_user_id", String(36), ForeignKey("users.id"), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("balance_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("owner_user_id", "currency", name="uq_accounts_owner_currency"),
    CheckConstraint("kind IN ('user', 'external')", name="ck_accounts_kind"),
    CheckConstraint("kind <> 'user' OR balance_minor >= 0", name="ck_accounts_no_overdraft"),
    CheckConstraint(
        "(kind = 'user') = (owner_user_id IS NOT NULL)", name="ck_accounts_owner_matches_kind"
    ),
)
Index(
    "uq_accounts_external_currency",
    accounts.c.currency,
    unique=True,
    sqlite_where=accounts.c.kind == "external",
    postgresql_where=accounts.c.kind == "external",
)

# Internal callers (wallet_service.service_accounts): a name, scopes, and only the argon2id
# hash of the secret. A rotation keeps the previous hash valid until its expiry; a
# disable, like a credentials change, bumps the version that every token carries.
service_accounts = Table(
    "service_accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated, sorted
    Column("secret_hash", String(255), nullable=False),
    Column("previous_secret_hash", String(255), nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("credentials_version", Integer, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(36), ForeignKey("users.id"), nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("disabled_by", String(36), ForeignKey("users.id"), nullable=True),
    UniqueConstraint("name", name="uq_service_accounts_name"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("from_account_id", BigId, ForeignKey("accounts.id"), nullable=True),
    Column("to_account_id", BigId, ForeignKey("accounts.id"), nullable=True),
    Column("initiated_by", String(36), ForeignKey("users.id"), nullable=False),
    Column("idempotency_key", String(MAX_IDEMPOTENCY_KEY_LENGTH), nullable=True),
    Column("request_fingerprint", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("fraud_score", Integer, nullable=True),
    Column("fraud_decision", String(16), nullable=True),
    Column("fraud_reasons", Text, nullable=True),  # JSON list of {rule_id, description}
    Column("fraud_rules_version", String(64), nullable=True),
    # JSON of the MovementFeatures sent with the Score call (NULL: not scored, e.g. a
    # reversal, or written before migration 0011), so a backtest replays exactly what was scored.
    Column("fraud_features", Text, nullable=True),
    Column("flagged", Boolean, nullable=False, server_default=text("false")),
    Column("review_status", String(16), nullable=True),
    Column("reviewed_by", String(36), ForeignKey("users.id"), nullable=True),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    Column("review_note", Text, nullable=True),
    Column("reverses_transaction_id", String(36), ForeignKey("transactions.id"), nullable=True),
    # The initiator's balance right after commit, so an idempotent replay answers as the original.
    Column("initiator_balance_after_minor", BigInteger, nullable=True),
    Column("note", Text, nullable=True),  # why, for a reversal
    # The service account that moved the money on the user's behalf (None: the user did).
    Column("initiated_by_service", String(36), ForeignKey("service_accounts.id"), nullable=True),
    UniqueConstraint("initiated_by", "idempotency_key", name="uq_transactions_idempotency"),
    UniqueConstraint("reverses_transaction_id", name="uq_transactions_single_reversal"),
    CheckConstraint("amount_minor > 0", name="ck_transactions_positive_amount"),
    CheckConstraint(
        "type IN ('deposit', 'withdrawal', 'transfer', 'reversal')", name="ck_transactions_type"
    ),
    CheckConstraint("status IN ('completed', 'rejected')", name="ck_transactions_status"),
    CheckConstraint(
        "review_status IS NULL OR review_status IN ('pending', 'cleared', 'confirmed_fraud')",
        name="ck_transactions_review_status",
    ),
)
Index("ix_transactions_from_account", transactions.c.from_account_id, transactions.c.id)
Index("ix_transactions_to_account", transactions.c.to_account_id, transactions.c.id)
Index("ix_transactions_initiator_time", transactions.c.initiated_by, transactions.c.created_at)
Index("ix_transactions_review", transactions.c.flagged, transactions.c.review_status)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("transaction_id", String(36), ForeignKey("transactions.id"), nullable=False),
    Column("account_id", BigId, ForeignKey("accounts.id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    CheckConstraint("amount_minor <> 0", name="ck_ledger_entries_nonzero"),
)
Index("ix_ledger_entries_transaction", ledger_entries.c.transaction_id)
Index("ix_ledger_entries_account", ledger_entries.c.account_id)

# The login lockout (wallet_service.store.lockout): failed-login counts per lockout key (a
# digest of the normalised username), shared by every replica through the database.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("lockout_key", String(64), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("window_started_ms", BigInteger, nullable=False),  # epoch milliseconds
)

# The transactional outbox (wallet_service.events): one row per event, written in the same
# transaction as the change it reports; the delivery worker (wallet_service.notifier)
# claims due rows with a lease, sends them and records the outcome.
outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # JSON: events.Event.body()
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    # JSON list of the destinations that already took it, so a retry skips them.
    Column("delivered_to", Text, nullable=False, server_default=text("'[]'")),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'dead')", name="ck_outbox_events_status"),
)
Index("ix_outbox_events_due", outbox_events.c.status, outbox_events.c.next_attempt_at)
