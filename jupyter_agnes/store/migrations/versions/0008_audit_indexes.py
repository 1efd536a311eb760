"""audit_log indexes for reading the log newest first, filtered (`store.audit_read`):
(ts, id) for the unfiltered keyset pages, and (actor|action|resource, ts, id) for each
filter, so a filtered page is one index range scan rather than a walk over the log.

The old single-column ts index is replaced by (ts, id).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"

INDEXES = {
    "ix_audit_log_ts_id": ["ts", "id"],
    "ix_audit_log_actor_ts_id": ["actor", "ts", "id"],
    "ix_audit_log_action_ts_id": ["action", "ts", "id"],
    "ix_audit_log_resource_ts_id": ["resource", "ts", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "audit_log", columns)
    op.drop_index("ix_audit_log_ts", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_ts", "audit_log", ["ts"])
    for name in INDEXES:
        op.drop_index(name, table_name="audit_log")
