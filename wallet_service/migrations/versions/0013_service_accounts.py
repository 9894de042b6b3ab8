"""create service_accounts; add transactions.initiated_by_service (which service moved
the money on a user's behalf). One feature, one revision id: the column cannot exist
without the table it points at.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("previous_secret_hash", sa.String(255), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "credentials_version", sa.Integer, nullable=False, server_default=sa.text("0")
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(36), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_by", sa.String(36), sa.ForeignKey("users.id"), nullable=True),
        sa.UniqueConstraint("name", name="uq_service_accounts_name"),
    )
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("initiated_by_service", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_transactions_initiated_by_service",
            "service_accounts",
            ["initiated_by_service"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_constraint("fk_transactions_initiated_by_service", type_="foreignkey")
        batch.drop_column("initiated_by_service")
    op.drop_table("service_accounts")
