"""identity_version triggers on PostgreSQL too, so the principal cache works there.

0002 created the counter everywhere but the triggers only on SQLite. The same events
bump it here, through one PL/pgSQL function and statement-level triggers.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"

FUNCTION = "agnes_bump_identity_version"
# table -> the events that change what a credential means (as in 0002)
WATCHED = {
    "users": "INSERT OR UPDATE OR DELETE",
    "user_groups": "INSERT OR UPDATE OR DELETE",
    "user_group_members": "INSERT OR UPDATE OR DELETE",
    "resource_grants": "INSERT OR UPDATE OR DELETE",
    "personal_access_tokens": "UPDATE OF revoked_at, expires_at, user_id OR DELETE",
    "sessions": "UPDATE OF revoked_at, expires_at, user_id OR DELETE",
}


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _is_postgres():
        return
    op.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN UPDATE identity_version SET version = version + 1 WHERE id = 1; RETURN NULL; END $$"
    )
    for table, events in WATCHED.items():
        op.execute(
            f"CREATE TRIGGER trg_identity_version_{table} AFTER {events} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if not _is_postgres():
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS trg_identity_version_{table} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
