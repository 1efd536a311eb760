"""The system store's tables (SQLAlchemy 2). Changes here need an Alembic revision."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Always-aware UTC datetimes, even on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


class Base(DeclarativeBase):
    pass


MEMBER_SOURCES = ("admin", "google_sync", "system_seed")


class GrantType(NamedTuple):
    """What a grant type's id names, and an example id (as typed in a shell)."""

    id_names: str
    example: str


# The one definition of grant types: REST validation, the CLI's choices and `grant --help`
# derive from it, so a new type is one entry here plus its rule (auth/rbac.py) and test.
GRANT_TYPES: dict[str, GrantType] = {
    "table": GrantType("a table's name in analytics.duckdb, or '*' for every table", "orders"),
    "dashboard": GrantType(
        "a dashboard's id: its notebook's name under the dashboards folder, without .ipynb"
        " (dashboards/sales.ipynb is `sales`; `jupyter agnes dashboards list` lists them),"
        " or '*' for every dashboard",
        "sales",
    ),
    "lab": GrantType(
        "always '*': JupyterLab itself (run code, edit files, open every notebook)", "'*'"
    ),
}
RESOURCE_TYPES = tuple(GRANT_TYPES)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_service: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Group(Base):
    __tablename__ = "user_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(320), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "user_group_members"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("user_groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    source: Mapped[str] = mapped_column(String(20))
    added_by: Mapped[str] = mapped_column(String(320), default="")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Grant(Base):
    __tablename__ = "resource_grants"
    __table_args__ = (UniqueConstraint("group_id", "resource_type", "resource_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("user_groups.id", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(500))
    assigned_by: Mapped[str] = mapped_column(String(320), default="")
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PersonalAccessToken(Base):
    __tablename__ = "personal_access_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    prefix: Mapped[str] = mapped_column(String(24))  # shown in listings, not a secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Comma-separated scope names (auth.principal.SCOPES), e.g. "data,lab" (migration 0005).
    scopes: Mapped[str] = mapped_column(String(64), default="data", server_default="data")


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    auth_method: Mapped[str] = mapped_column(String(20), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")


class LoginCode(Base):
    """One-time codes behind `jupyter agnes login-link`; only the hash is kept."""

    __tablename__ = "login_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TableOwner(Base):
    """Which extract source owns an analytics table name (first claim wins)."""

    __tablename__ = "table_owners"
    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    # Migration 0008: keyset pages newest first, unfiltered or by each filter (audit_read).
    __table_args__ = (
        Index("ix_audit_log_ts_id", "ts", "id"),
        Index("ix_audit_log_actor_ts_id", "actor", "ts", "id"),
        Index("ix_audit_log_action_ts_id", "action", "ts", "id"),
        Index("ix_audit_log_resource_ts_id", "resource", "ts", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(320), default="")
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(500), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[str] = mapped_column(String(64), default="ok")


class SyncJob(Base):
    """A background rebuild asked for through `POST /agnes/api/sync`; kept across restarts.

    `runner` names the process running it (host:pid), so a job whose process died can be
    reported as interrupted instead of running forever."""

    __tablename__ = "sync_jobs"
    __table_args__ = (Index("ix_sync_jobs_created_at", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_by: Mapped[str] = mapped_column(String(320), default="")
    runner: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # at the end
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Lease(Base):
    """Work that several servers sharing a store must do once per interval (the Google
    re-check): taken by a conditional UPDATE (`store.leases`), held until `expires_at`."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Source(Base):
    """A data source an admin configured (`jupyter agnes source add`): a connector type,
    its options (credentials only by reference: `uri_env`, `uri_file`), the tables to
    read and an optional schedule, plus what its last run did."""

    __tablename__ = "sources"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tables: Mapped[list[str]] = mapped_column(JSON, default=list)
    schedule_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SourceCursor(Base):
    """An incremental table's high-water mark: rows with `column` past `high_water`
    are the next run's. `high_water` is the value's text (typed back by the connector)."""

    __tablename__ = "source_cursors"
    source: Mapped[str] = mapped_column(
        String(64), ForeignKey("sources.name", ondelete="CASCADE"), primary_key=True
    )
    table_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    column: Mapped[str] = mapped_column(String(128))
    high_water: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
