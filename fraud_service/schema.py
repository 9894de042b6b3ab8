"""The fraud service's own tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Prefixed `fraud_` (and versioned in `fraud_alembic_version`) so the fraud store may share
a PostgreSQL database with the wallet without a clash. Alembic migrations under
`fraud_service/migrations/versions/` create exactly this schema.

Exactly one rule set is live, kept by the database twice over: a partial unique index
allows at most one row with status 'live', and the singleton `fraud_state` row (id 1)
points at it with a NOT NULL foreign key. Activation changes both in one transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()


rule_sets = Table(
    "fraud_rule_sets",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),
    # The canonical JSON document (fraud_service.rulesets.to_document); never edited.
    Column("document", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("activated_by", String(64), nullable=True),
    Column("activated_at", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('draft', 'live', 'archived')", name="ck_fraud_rule_sets_status"),
)
Index(
    "uq_fraud_rule_sets_one_live",
    rule_sets.c.status,
    unique=True,
    sqlite_where=rule_sets.c.status == "live",
    postgresql_where=rule_sets.c.status == "live",
)

# One row (id 1): the live version, and a generation every admin write bumps so each
# replica sees with one primary-key read per score whether to reload.
state = Table(
    "fraud_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("live_version", Integer, ForeignKey("fraud_rule_sets.version"), nullable=False),
    Column("generation", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_fraud_state_singleton"),
)

list_entries = Table(
    "fraud_list_entries",
    metadata,
    Column("list_name", String(8), nullable=False),
    # The canonical username (wallet_service.identity), the same form the wallet sends.
    Column("username", String(64), nullable=False),
    # JSON list of rule ids or kinds an allow entry skips ("*": all); empty for block.
    Column("rules", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("list_name", "username", name="pk_fraud_list_entries"),
    CheckConstraint("list_name IN ('block', 'allow')", name="ck_fraud_list_entries_list"),
)

# A reviewer's "cleared, snooze N days": the rules that hit are skipped for that user
# until `until` (compared with the movement's time at each score, so it expires by itself).
snoozes = Table(
    "fraud_snoozes",
    metadata,
    Column("username", String(64), nullable=False),
    Column("rule_id", String(64), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("username", "rule_id", name="pk_fraud_snoozes"),
)
