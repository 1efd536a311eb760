"""Reading the audit log (`store.audit_read`, `store.audit_filters`): filters, keyset
paging that neither repeats nor skips entries sharing a timestamp, and hostile input."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store.audit_filters import (
    MAX_LIMIT,
    AuditFilter,
    AuditQueryError,
    Cursor,
    parse_filter,
)
from jupyter_agnes.store.audit_read import (
    csv_cell,
    csv_header,
    csv_line,
    distinct_actions,
    like_prefix,
    page_model,
    read_all,
    read_page,
)
from jupyter_agnes.store.engine import open_store
from tests.support.audit_log import T0, add_entries, entry, minutes
from tests.support.migrations import sqlite_store_at

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    store = open_store(resolve_data_dir(tmp_path))
    yield store
    store.close()


def ids(store, flt: AuditFilter) -> list[int]:
    with store.read() as s:
        return [e.id for e in read_page(s, flt).entries]


def all_pages(store, flt: AuditFilter) -> list[int]:
    seen: list[int] = []
    while True:
        with store.read() as s:
            page = read_page(s, flt)
        seen += [e.id for e in page.entries]
        if page.next is None:
            return seen
        # The cursor travels as text, as it does through the API.
        flt = AuditFilter(**{**flt.__dict__, "cursor": Cursor.decode(page.next.encode())})


def test_pages_are_newest_first_and_stable_with_equal_timestamps(store):
    # 23 rows, in runs sharing one timestamp, written out of time order
    rows = [entry("auth.login", ts=T0 + minutes(i % 5)) for i in range(23)]
    add_entries(store, rows)
    for limit in (1, 2, 4, 5, 7, 23, 50):
        seen = all_pages(store, AuditFilter(limit=limit))
        assert len(seen) == len(set(seen)) == 23, limit
        with store.read() as s:
            order = [(e.ts, e.id) for e in read_page(s, AuditFilter(limit=23)).entries]
        assert order == sorted(order, reverse=True)
        assert seen == [i for _, i in order]


def test_new_entries_do_not_shift_the_next_page(store):
    add_entries(store, [entry("a", ts=T0 + minutes(i)) for i in range(6)])
    with store.read() as s:
        first = read_page(s, AuditFilter(limit=3))
    add_entries(store, [entry("a", ts=T0 + minutes(60 + i)) for i in range(4)])
    with store.read() as s:
        second = read_page(s, AuditFilter(limit=3, cursor=first.next))
    assert [e.ts for e in second.entries] == [T0 + minutes(i) for i in (2, 1, 0)]
    assert second.next is None


def test_filters(store):
    add_entries(
        store,
        [
            entry("auth.login", actor="ann@example.com", resource="user:ann@example.com"),
            entry("auth.logout", actor="bob@example.com", resource="user:bob@example.com"),
            entry("auth_x", actor="bob@example.com", ts=T0 + minutes(1)),
            entry("grant.add", resource="table:sales", ts=T0 + minutes(2)),
            entry("grant.add", resource="table:sales_2024", ts=T0 + minutes(3)),
            entry("grant.add", resource="table:salesX", ts=T0 + minutes(4)),
            entry("token.create", resource="100%_sure", ts=T0 + minutes(5)),
        ],
    )
    assert ids(store, AuditFilter(actor="bob@example.com")) == [3, 2]
    assert ids(store, AuditFilter(actor="BOB@example.com")) == []
    assert ids(store, AuditFilter(action_prefix="auth.")) == [2, 1]
    assert ids(store, AuditFilter(action_prefix="auth")) == [3, 2, 1]
    assert ids(store, AuditFilter(action_prefix="nothing")) == []
    assert ids(store, AuditFilter(target="table:sales")) == [4]
    assert ids(store, AuditFilter(target="table:sales*")) == [6, 5, 4]
    # `_` and `%` are literal in a prefix, not LIKE wildcards
    assert ids(store, AuditFilter(target="table:sales_*")) == [5]
    assert ids(store, AuditFilter(target="100%*")) == [7]
    assert ids(store, AuditFilter(target="100_*")) == []
    assert ids(store, AuditFilter(target="TABLE:sales*")) == []  # case counts, as on PostgreSQL
    assert ids(store, AuditFilter(action_prefix="auth", actor="ann@example.com")) == [1]
    assert ids(store, AuditFilter(since=T0 + minutes(2), until=T0 + minutes(4))) == [5, 4]
    with store.read() as s:
        assert distinct_actions(s) == sorted({"auth.login", "auth.logout", "auth_x",
                                              "grant.add", "token.create"})


def test_an_action_prefix_pages_across_actions(store):
    rows = [entry(f"auth.{'login' if i % 3 else 'logout'}", ts=T0 + minutes(i % 4))
            for i in range(20)]
    add_entries(store, [*rows, entry("other", ts=T0 + minutes(2))])
    seen = all_pages(store, AuditFilter(action_prefix="auth.", limit=3))
    assert sorted(seen) == list(range(1, 21))


def test_like_prefix_escapes_wildcards():
    assert like_prefix("a%b_c\\") == "a\\%b\\_c\\\\%"


def test_parse_filter_reads_times_durations_and_limits():
    flt = parse_filter({"since": "1h", "until": "2026-11-30T11:30:00Z", "limit": "500",
                        "action": "auth.", "actor": "", "target": "  "}, now=NOW)
    assert flt.since == NOW - timedelta(hours=1)
    assert flt.until == datetime(2026, 11, 30, 11, 30, tzinfo=timezone.utc)
    assert flt.limit == MAX_LIMIT and flt.action_prefix == "auth."
    assert flt.actor is None and flt.target is None
    assert parse_filter({"since": "2026-11-30T12:00:00"}).since == NOW  # no zone: UTC
    assert parse_filter({"since": "2026-11-30T13:00:00+01:00"}).since == NOW
    assert parse_filter({"since": "7d"}, now=NOW).since == NOW - timedelta(days=7)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
        ({"limit": "501"}, "limit must be"),
        ({"limit": "-1"}, "limit must be"),
        ({"limit": "1e3"}, "limit must be"),
        ({"limit": "9" * 5000}, "limit must be"),
        ({"since": "yesterday"}, "since must be an ISO 8601 time"),
        ({"until": "2026-13-01"}, "until must be an ISO 8601 time"),
        ({"since": "9999999w"}, "too far back"),
        ({"since": "x" * 100}, "too long"),
        ({"since": "2h", "until": "3h"}, "since must be before until"),
        ({"actor": "a" * 321}, "actor is longer than 320"),
        ({"action": "a" * 65}, "action is longer than 64"),
        ({"target": "a" * 501}, "target is longer than 500"),
        ({"actor": "ann\x00@example.com"}, "control character"),
        ({"cursor": "not-a-cursor"}, "cursor is not one this server gave out"),
        ({"cursor": "A" * 65}, "cursor is not"),
        ({"cursor": "%%%"}, "cursor is not"),
        ({"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OS4x"}, "cursor is not"),  # year > 9999
        ({"offset": "10"}, "unknown parameter 'offset'"),
    ],
)
def test_hostile_input_is_refused_with_a_clear_message(params, message):
    with pytest.raises(AuditQueryError, match=message.replace("(", r"\(")):
        parse_filter(params, now=NOW)


def test_cursor_round_trip():
    cursor = Cursor(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), 42)
    assert Cursor.decode(cursor.encode()) == cursor


def test_csv_cells_are_never_formulas(store):
    for hostile in ("=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(hostile) == "'" + hostile
    assert csv_cell("ok") == "ok" and csv_cell(None) == ""
    add_entries(store, [entry("=cmd|' /C calc'!A0", actor="@evil", resource="+x",
                              params={"q": "=1"})])
    rows = [csv_header()] + [csv_line(e) for e in read_all(store, AuditFilter())]
    text = "".join(rows)
    assert text.splitlines()[0] == "id,ts,actor,user_id,action,resource,result,params"
    line = text.splitlines()[1]
    assert ",'@evil,," in line and "'=cmd|" in line and ",'+x," in line


def test_read_all_streams_every_page(store):
    add_entries(store, [entry("a", ts=T0 + minutes(i % 3)) for i in range(25)])
    assert len({e.id for e in read_all(store, AuditFilter(), page_size=4)}) == 25


def test_page_model(store):
    add_entries(store, [entry("a"), entry("a")])
    with store.read() as s:
        model = page_model(read_page(s, AuditFilter(limit=1)))
    assert model["entries"][0]["id"] == 2 and model["entries"][0]["action"] == "a"
    assert Cursor.decode(model["next"]).id == 2


def test_migration_0008_gives_the_filters_their_indexes(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "agnes.sqlite")
    indexes = {
        row[1]: [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")]
        for row in conn.execute("PRAGMA index_list('audit_log')")
    }
    assert indexes == {
        "ix_audit_log_ts_id": ["ts", "id"],
        "ix_audit_log_actor_ts_id": ["actor", "ts", "id"],
        "ix_audit_log_action_ts_id": ["action", "ts", "id"],
        "ix_audit_log_resource_ts_id": ["resource", "ts", "id"],
    }


def test_many_distinct_actions_fall_back_to_one_like_query(store, monkeypatch):
    from jupyter_agnes.store import audit_read

    add_entries(store, [entry(a, ts=T0 + minutes(i)) for i, a in
                        enumerate(["auth.a", "auth_b", "auth.c", "authXd", "other"])])
    expected = ids(store, AuditFilter(action_prefix="auth."))
    monkeypatch.setattr(audit_read, "MAX_EXPANDED_ACTIONS", 2)
    assert ids(store, AuditFilter(action_prefix="auth.")) == expected == [3, 1]
    assert ids(store, AuditFilter(action_prefix="auth_")) == [2]
    assert ids(store, AuditFilter(action_prefix="AUTH.")) == []


def test_migration_0008_upgrades_a_0007_log_and_downgrades(tmp_path):
    """A store at 0007 holding audit rows gains the indexes and reads the same; the
    downgrade gives back the ts index alone."""
    from alembic import command
    from sqlalchemy import create_engine


    data_dir, engine, cfg = sqlite_store_at(tmp_path, "0007")
    with engine.begin() as conn:
        for minute in (1, 2, 2):
            conn.exec_driver_sql(
                "insert into audit_log (ts, actor, action, resource, params, result) values "
                f"('2026-11-01 12:0{minute}:00.000000', 'ann@example.com', 'auth.login', '', "
                "'{}', 'ok')"
            )
    engine.dispose()
    store = open_store(data_dir)
    assert ids(store, AuditFilter(action_prefix="auth.", limit=2)) == [3, 2]
    store.close()
    engine = create_engine(engine.url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    engine.dispose()
    conn = sqlite3.connect(data_dir / "agnes.sqlite")
    names = {row[1] for row in conn.execute("PRAGMA index_list('audit_log')")}
    assert names == {"ix_audit_log_ts"}
