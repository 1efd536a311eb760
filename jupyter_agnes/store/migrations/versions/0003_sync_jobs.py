"""sync_jobs: background rebuilds survive a server restart (status, report, error).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("requested_by", sa.String(320), nullable=False, server_default=""),
        sa.Column("runner", sa.String(300), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("progress", sa.JSON, nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_sync_jobs_created_at", "sync_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_jobs_created_at", table_name="sync_jobs")
    op.drop_table("sync_jobs")
