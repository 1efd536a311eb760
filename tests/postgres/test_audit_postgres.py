"""Reading the audit log on a real PostgreSQL: migration 0008's indexes, the filters
(a prefix with LIKE wildcards in it, a prefix across actions) and keyset paging."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import inspect

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store.audit_filters import AuditFilter
from jupyter_agnes.store.audit_read import read_page
from jupyter_agnes.store.engine import open_store
from tests.support.audit_log import T0, add_entries, entry, minutes
from tests.support.pg_server import postgres_server


@pytest.fixture
def pg_store(tmp_path):
    with postgres_server() as url:
        store = open_store(resolve_data_dir(tmp_path), url)
        yield store
        store.close()


def ids(store, flt: AuditFilter) -> list[int]:
    with store.read() as s:
        return [e.id for e in read_page(s, flt).entries]


def test_audit_indexes_filters_and_paging_on_postgres(pg_store):
    store = pg_store
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(store.engine).get_indexes("audit_log")}
    assert indexes == {
        "ix_audit_log_ts_id": ["ts", "id"],
        "ix_audit_log_actor_ts_id": ["actor", "ts", "id"],
        "ix_audit_log_action_ts_id": ["action", "ts", "id"],
        "ix_audit_log_resource_ts_id": ["resource", "ts", "id"],
    }
    add_entries(store, [
        *(entry(f"auth.{'login' if i % 2 else 'logout'}", actor="ann@example.com",
                ts=T0 + minutes(i % 3)) for i in range(9)),
        entry("auth_x", actor="bob@example.com", resource="table:sales_2024", ts=T0),
        entry("grant.add", actor="bob@example.com", resource="table:salesX", ts=T0),
    ])
    first_id = min(ids(store, AuditFilter(limit=500)))
    assert ids(store, AuditFilter(action_prefix="auth.", limit=500)) == sorted(
        range(first_id, first_id + 9),
        key=lambda i: ((i - first_id) % 3, i), reverse=True)
    assert len(ids(store, AuditFilter(action_prefix="auth", limit=500))) == 10
    assert ids(store, AuditFilter(target="table:sales_*")) == [first_id + 9]
    assert ids(store, AuditFilter(actor="bob@example.com")) == [first_id + 10, first_id + 9]
    assert ids(store, AuditFilter(since=T0 + minutes(2))) == [first_id + 8, first_id + 5,
                                                             first_id + 2]
    # keyset pages over runs of equal timestamps: each entry once, in order
    flt, seen = AuditFilter(action_prefix="auth.", limit=2), []
    while True:
        with store.read() as s:
            page = read_page(s, flt)
        seen += [e.id for e in page.entries]
        if page.next is None:
            break
        flt = replace(flt, cursor=page.next)
    assert seen == ids(store, AuditFilter(action_prefix="auth.", limit=500))
