"""create fraud_list_entries (block and allow lists of usernames)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fraud_list_entries",
        sa.Column("list_name", sa.String(8), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("list_name", "username", name="pk_fraud_list_entries"),
        sa.CheckConstraint("list_name IN ('block', 'allow')", name="ck_fraud_list_entries_list"),
    )


def downgrade() -> None:
    op.drop_table("fraud_list_entries")
