"""create login_attempts (the login lockout shared by every wallet replica)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("lockout_key", sa.String(64), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("window_started_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
