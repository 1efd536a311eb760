"""leases: periodic work that servers sharing a store run once per interval (the Google
re-check of sessions and PATs, `auth.google_refresh`).

One row per kind of work, taken with a conditional UPDATE; not watched by the
identity_version triggers, so taking a lease never empties a principal cache.

Revision ID: 0006
Revises: 0005
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

GOOGLE_REFRESH = "google_refresh"


def upgrade() -> None:
    leases = op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(300), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Expired from the start: the first server to ask takes it.
    expired = datetime(2000, 1, 1, tzinfo=timezone.utc)
    op.bulk_insert(leases, [{"name": GOOGLE_REFRESH, "holder": "", "expires_at": expired}])


def downgrade() -> None:
    op.drop_table("leases")
