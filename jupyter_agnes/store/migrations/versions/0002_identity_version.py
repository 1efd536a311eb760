"""identity_version: a counter that only changes when someone's rights might have;
and case-insensitive uniqueness of user emails.

The per-process principal cache compares it on every request. Triggers bump it on any
change to users, groups, memberships and grants, and on PAT or session rows being
created, revoked or re-dated — but not on audit writes or PAT last-use updates, which
happen on almost every request and would otherwise empty the cache each time.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

BUMP = "UPDATE identity_version SET version = version + 1 WHERE id = 1"
# table -> the events that change what a credential means
WATCHED = {
    "users": ("INSERT", "UPDATE", "DELETE"),
    "user_groups": ("INSERT", "UPDATE", "DELETE"),
    "user_group_members": ("INSERT", "UPDATE", "DELETE"),
    "resource_grants": ("INSERT", "UPDATE", "DELETE"),
    # A new token or session cannot make a cached entry stale (only resolved credentials
    # are cached), so inserts — every login — leave the cache alone.
    "personal_access_tokens": ("UPDATE OF revoked_at, expires_at, user_id", "DELETE"),
    "sessions": ("UPDATE OF revoked_at, expires_at, user_id", "DELETE"),
}


def _trigger_name(table: str, event: str) -> str:
    return f"trg_identity_version_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "identity_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_identity_version_single_row"),
    )
    op.execute("INSERT INTO identity_version (id, version) VALUES (1, 0)")
    # Emails are stored lower-cased; the index makes case-insensitive uniqueness a rule of
    # the database too, not only of the code that writes it.
    op.create_index("ux_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    if op.get_bind().dialect.name != "sqlite":
        return  # the principal cache (and so the counter) is SQLite-only
    for table, events in WATCHED.items():
        for event in events:
            op.execute(
                f"CREATE TRIGGER {_trigger_name(table, event)} AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    op.drop_index("ux_users_email_lower", table_name="users")
    if op.get_bind().dialect.name == "sqlite":
        for table, events in WATCHED.items():
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}")
    op.drop_table("identity_version")
