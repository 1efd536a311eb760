"""Opening the system store: engine settings, first-use migration, version guard."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from jupyter_agnes.envknobs import env_str
from jupyter_agnes.store.audit_queue import AuditQueue

log = logging.getLogger("jupyter_agnes.store")
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DEFAULT_WAIT_MS = 15_000  # the CLI and background writers wait out a busy store
REQUEST_WAIT_S = 3.0  # a write on a request path gives up sooner: the caller gets a 503
BACKGROUND_WAIT_S = DEFAULT_WAIT_MS / 1000


class StoreError(RuntimeError):
    """The store cannot be opened safely (for example, its schema is newer than this code)."""


def store_url(data_dir: Path) -> str:
    """`AGNES_DB_URL`, else SQLite at `<data-dir>/agnes.sqlite`."""
    return env_str("AGNES_DB_URL") or f"sqlite:///{data_dir / 'agnes.sqlite'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={DEFAULT_WAIT_MS}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front: a deferred read-then-write transaction in WAL
    # fails at once with SQLITE_BUSY_SNAPSHOT instead of waiting for busy_timeout.
    options = conn.get_execution_options()
    if options.get("agnes_write", False):
        wait_ms = int(options.get("agnes_wait_ms", DEFAULT_WAIT_MS))
        conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")  # per transaction
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Store:
    """An open system store: an engine plus read and write session factories."""

    def __init__(self, engine: Engine, data_dir: Path | None = None) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(agnes_write=True), expire_on_commit=False
        )
        self._bounded: dict[int, sessionmaker[Session]] = {}
        self.default_wait_s: float | None = None
        self.audit_queue = AuditQueue(self)  # hot-path audit entries (queries)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextlib.contextmanager
    def write(self, wait_s: float | None = None) -> Iterator[Session]:
        """One transaction; committed on success, rolled back on any exception.

        `wait_s` bounds the wait for a lock another process holds (default:
        `default_wait_s`, else 15 s); past it the write raises OperationalError, which
        servers answer with 503. A server sets `default_wait_s` short (REQUEST_WAIT_S):
        its writes are for someone waiting; its background writers pass a long `wait_s`.
        """
        wait_s = self.default_wait_s if wait_s is None else wait_s
        factory = self._write if wait_s is None else self._bounded_writer(wait_s)
        with factory() as session, session.begin():
            if wait_s is not None and not self.is_sqlite:
                session.execute(text(f"SET LOCAL lock_timeout = '{int(wait_s * 1000)}ms'"))
            yield session

    def _bounded_writer(self, wait_s: float) -> sessionmaker[Session]:
        wait_ms = max(1, int(wait_s * 1000))
        factory = self._bounded.get(wait_ms)
        if factory is None:
            options = {"agnes_write": True, "agnes_wait_ms": wait_ms}
            factory = sessionmaker(self.engine.execution_options(**options), expire_on_commit=False)
            self._bounded[wait_ms] = factory
        return factory

    def close(self) -> None:
        self.audit_queue.close()
        self.engine.dispose()


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, url: str) -> None:
    """Upgrade to head; refuse a schema newer than this code without touching it."""
    cfg = _alembic_config(url)
    script = ScriptDirectory.from_config(cfg)
    current = _current_revision(engine)
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StoreError(
            f"The system store's schema (revision {current}) is newer than this version of "
            f"jupyter_agnes understands (head {script.get_current_head()}). "
            "Upgrade jupyter_agnes; the data was not modified."
        )
    if current != script.get_current_head():
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextlib.contextmanager
def _migration_lock(data_dir: Path | None) -> Iterator[None]:
    if data_dir is None:
        yield
        return
    with open(data_dir / ".migrate.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def store_exists(data_dir: Path) -> bool:
    """Has the store of `data_dir` (or `AGNES_DB_URL`) been created? Looks without creating
    anything: not the SQLite file, nor a schema in an empty database."""
    url = store_url(data_dir)
    if url == f"sqlite:///{data_dir / 'agnes.sqlite'}":
        path = data_dir / "agnes.sqlite"
        if not path.is_file() or path.stat().st_size == 0:
            return False
    engine = create_engine(url)
    try:
        return _current_revision(engine) is not None
    finally:
        engine.dispose()


def open_store(data_dir: Path, url: str | None = None) -> Store:
    """Open (and on first use create and migrate) the store for `data_dir`."""
    url = url or store_url(data_dir)
    default_file = data_dir / "agnes.sqlite"
    if url == f"sqlite:///{default_file}" and not default_file.exists():
        # SQLite gives -wal/-shm the main file's mode, so this keeps all three 0600.
        default_file.touch(mode=0o600, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 15, "check_same_thread": False}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    with _migration_lock(data_dir):
        migrate(engine, url)
    store = Store(engine, data_dir)
    from jupyter_agnes.store.directory import seed_system_groups

    seed_system_groups(store)
    return store
