"""add users.frozen_at, frozen_by, frozen_reason (an admin's freeze: who, when, why)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("frozen_by", sa.String(36), nullable=True))
        batch.add_column(sa.Column("frozen_reason", sa.Text, nullable=True))
        batch.create_foreign_key("fk_users_frozen_by", "users", ["frozen_by"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("fk_users_frozen_by", type_="foreignkey")
        batch.drop_column("frozen_reason")
        batch.drop_column("frozen_by")
        batch.drop_column("frozen_at")
