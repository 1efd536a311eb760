"""personal_access_tokens.scopes: what each PAT may reach (data, lab, admin).

Tokens made before scopes existed reached everything their owner could, so they keep
every scope (the owner's rights still bound them at each request); new rows default to
`data`, the least.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

EVERY_SCOPE = "data,lab,admin"


def upgrade() -> None:
    op.add_column(
        "personal_access_tokens",
        sa.Column("scopes", sa.String(64), nullable=False, server_default="data"),
    )
    op.execute(f"UPDATE personal_access_tokens SET scopes = '{EVERY_SCOPE}'")


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): a batch copy would lose 0002's triggers.
    op.drop_column("personal_access_tokens", "scopes")
