"""create transactions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "transactions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("from_account_id", BigId, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("to_account_id", BigId, sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("initiated_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fraud_score", sa.Integer, nullable=True),
        sa.Column("fraud_decision", sa.String(16), nullable=True),
        sa.Column("fraud_reasons", sa.Text, nullable=True),
        sa.Column("fraud_rules_version", sa.String(64), nullable=True),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("review_status", sa.String(16), nullable=True),
        sa.Column("reviewed_by", sa.String(36), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text, nullable=True),
        sa.Column(
            "reverses_transaction_id",
            sa.String(36),
            sa.ForeignKey("transactions.id"),
            nullable=True,
        ),
        sa.Column("initiator_balance_after_minor", sa.BigInteger, nullable=True),
        sa.UniqueConstraint(
            "initiated_by", "idempotency_key", name="uq_transactions_idempotency"
        ),
        sa.UniqueConstraint("reverses_transaction_id", name="uq_transactions_single_reversal"),
        sa.CheckConstraint("amount_minor > 0", name="ck_transactions_positive_amount"),
        sa.CheckConstraint(
            "type IN ('deposit', 'withdrawal', 'transfer', 'reversal')",
            name="ck_transactions_type",
        ),
        sa.CheckConstraint("status IN ('completed', 'rejected')", name="ck_transactions_status"),
        sa.CheckConstraint(
            "review_status IS NULL OR review_status IN ('pending', 'cleared', 'confirmed_fraud')",
            name="ck_transactions_review_status",
        ),
    )
    op.create_index(
        "ix_transactions_from_account", "transactions", ["from_account_id", "id"]
    )
    op.create_index("ix_transactions_to_account", "transactions", ["to_account_id", "id"])
    op.create_index(
        "ix_transactions_initiator_time", "transactions", ["initiated_by", "created_at"]
    )
    op.create_index("ix_transactions_review", "transactions", ["flagged", "review_status"])


def downgrade() -> None:
    op.drop_table("transactions")
