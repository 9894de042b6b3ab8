"""create fraud_rule_sets and fraud_state (versioned rule sets, exactly one live)

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fraud_rule_sets",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(64), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'live', 'archived')", name="ck_fraud_rule_sets_status"
        ),
    )
    op.create_index(
        "uq_fraud_rule_sets_one_live",
        "fraud_rule_sets",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'live'"),
        postgresql_where=sa.text("status = 'live'"),
    )
    op.create_table(
        "fraud_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "live_version",
            sa.Integer,
            sa.ForeignKey("fraud_rule_sets.version"),
            nullable=False,
        ),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_fraud_state_singleton"),
    )


def downgrade() -> None:
    op.drop_table("fraud_state")
    op.drop_index("uq_fraud_rule_sets_one_live", table_name="fraud_rule_sets")
    op.drop_table("fraud_rule_sets")
