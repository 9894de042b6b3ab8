"""create accounts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("owner_user_id", sa.String(36), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("balance_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_user_id", "currency", name="uq_accounts_owner_currency"),
        sa.CheckConstraint("kind IN ('user', 'external')", name="ck_accounts_kind"),
        sa.CheckConstraint(
            "kind <> 'user' OR balance_minor >= 0", name="ck_accounts_no_overdraft"
        ),
        sa.CheckConstraint(
            "(kind = 'user') = (owner_user_id IS NOT NULL)",
            name="ck_accounts_owner_matches_kind",
        ),
    )
    op.create_index(
        "uq_accounts_external_currency",
        "accounts",
        ["currency"],
        unique=True,
        sqlite_where=sa.text("kind = 'external'"),
        postgresql_where=sa.text("kind = 'external'"),
    )


def downgrade() -> None:
    op.drop_index("uq_accounts_external_currency", table_name="accounts")
    op.drop_table("accounts")
