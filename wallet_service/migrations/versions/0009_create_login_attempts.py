"""create login_attempts (the login lockout shared by every wallet replica)

Revision ID: 0009
Revises: 0006b
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006b"
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
