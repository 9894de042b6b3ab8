"""add users.username_canonical (the identity: NFKC + casefold), unique

Existing names are backfilled with wallet_service.identity.canonical_username. If two
existing users share a canonical name (say `bob` and `Bob`), the migration stops before
changing anything and names them: merging accounts is a decision for a person, never
for a migration.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from wallet_service.identity import UsernameCollisionError, canonical_username

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, username FROM users ORDER BY username, id")).all()
    canonical = {user_id: canonical_username(name) for user_id, name in rows}
    _refuse_collisions(rows, canonical)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_canonical", sa.String(64), nullable=True))
    update = sa.text("UPDATE users SET username_canonical = :canonical WHERE id = :id")
    for user_id, value in canonical.items():
        conn.execute(update, {"id": user_id, "canonical": value})
    with op.batch_alter_table("users") as batch:
        batch.alter_column("username_canonical", existing_type=sa.String(64), nullable=False)
        batch.create_index("uq_users_username_canonical", ["username_canonical"], unique=True)


def _refuse_collisions(rows: list[sa.Row[tuple[str, str]]], canonical: dict[str, str]) -> None:
    groups: dict[str, list[str]] = {}
    for user_id, name in rows:
        groups.setdefault(canonical[user_id], []).append(name)
    clashes = [names for names in groups.values() if len(names) > 1]
    if clashes:
        listed = "; ".join(" = ".join(repr(n) for n in names) for names in clashes)
        raise UsernameCollisionError(
            "migration 0006 stopped: these existing usernames are one identity under "
            f"case/Unicode normalisation and must be resolved by hand first: {listed}"
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("uq_users_username_canonical")
        batch.drop_column("username_canonical")
