"""sources: data sources admins configure (connector type, options, tables, schedule,
last run) and the high-water marks of their incremental tables.

Not watched by the identity_version triggers: a source changes no one's rights.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("tables", sa.JSON, nullable=False),
        sa.Column("schedule_s", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_run_at", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_rows", sa.Integer, nullable=True),
        sa.Column("next_run_at", TS, nullable=True),
    )
    op.create_table(
        "source_cursors",
        sa.Column(
            "source",
            sa.String(64),
            sa.ForeignKey("sources.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("table_name", sa.String(128), primary_key=True),
        sa.Column("column", sa.String(128), nullable=False),
        sa.Column("high_water", sa.Text, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_cursors")
    op.drop_table("sources")
