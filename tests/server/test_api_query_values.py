"""Every DuckDB type comes out of POST /agnes/api/query as JSON and CSV (docs/query-api.md),
and input that cannot be represented is a 400, never a 500. All of it as a user with no
grants at all: none of this needs a table."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from jupyter_agnes.orchestrator import SyncOrchestrator
from tests.support.apihelpers import bearer, call
from tests.support.datahelpers import make_extract

UTC_HERE = time.localtime().tm_gmtoff == 0  # TIMESTAMPTZ text is in the server's zone

# (SQL expression, its JSON value, its CSV cell). CSV cells are DuckDB's own text; nested
# values are the same JSON text in JSON and CSV.
TYPES = [
    ("[1, 2, NULL]::INTEGER[]", [1, 2, None], "[1,2,null]"),
    ("{'a': 1, 'b': 'x'}", {"a": 1, "b": "x"}, '{"a":1,"b":"x"}'),
    ("MAP {'k': 1, 'j': 2}", {"k": 1, "j": 2}, '{"k":1,"j":2}'),
    ("MAP {1: 'a'}", {"1": "a"}, '{"1":"a"}'),
    ("union_value(num := 2)::UNION(num INTEGER, str VARCHAR)", {"num": 2}, '{"num":2}'),
    ("[1, 2, 3]::INTEGER[3]", [1, 2, 3], "[1,2,3]"),
    ("[{'a': [MAP {'x': ['nan'::DOUBLE]}]}]", [{"a": [{"x": ["nan"]}]}], '[{"a":[{"x":[NaN]}]}]'),
    ("'\\xAA\\x00ab'::BLOB", "qgBhYg==", "qgBhYg=="),
    ("'10101'::BIT", "10101", "10101"),
    ("INTERVAL '1 month 2 days 3 seconds'", "1 month 2 days 00:00:03", "1 month 2 days 00:00:03"),
    ("'123456789012345678901234567890123456789012345'::VARINT",
     123456789012345678901234567890123456789012345,
     "123456789012345678901234567890123456789012345"),
    ("170141183460469231731687303715884105727::HUGEINT",
     170141183460469231731687303715884105727, "170141183460469231731687303715884105727"),
    ("340282366920938463463374607431768211455::UHUGEINT",
     340282366920938463463374607431768211455, "340282366920938463463374607431768211455"),
    ("-18446744073709551616::HUGEINT", -18446744073709551616, "-18446744073709551616"),
    ("18446744073709551615::UBIGINT", 18446744073709551615, "18446744073709551615"),
    ("123.45::DECIMAL(10,2)", 123.45, "123.45"),
    ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID",
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("'12:34:56.789'::TIME", "12:34:56.789", "12:34:56.789"),
    ("'12:34:56+02'::TIMETZ", "12:34:56+02", "12:34:56+02"),
    ("DATE '2024-01-02'", "2024-01-02", "2024-01-02"),
    ("'2024-01-02 03:04:05.123456'::TIMESTAMP",
     "2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456"),
    ("'2024-01-02 03:04:05.123456789'::TIMESTAMP_NS",
     "2024-01-02 03:04:05.123456789", "2024-01-02 03:04:05.123456789"),
    ("'2024-01-02 03:04:05.123'::TIMESTAMP_MS", "2024-01-02 03:04:05.123",
     "2024-01-02 03:04:05.123"),
    ("'2024-01-02 03:04:05'::TIMESTAMP_S", "2024-01-02 03:04:05", "2024-01-02 03:04:05"),
    ("'294247-01-10 04:00:54.775806'::TIMESTAMP", "294247-01-10 04:00:54.775806",
     "294247-01-10 04:00:54.775806"),
    ("'5877642-06-25 (BC)'::DATE", "5877642-06-25 (BC)", "5877642-06-25 (BC)"),
    ("'nan'::DOUBLE", "nan", "nan"),
    ("'inf'::DOUBLE", "inf", "inf"),
    ("'-inf'::FLOAT", "-inf", "-inf"),
    ("1.5::FLOAT", 1.5, "1.5"),
    ("'happy'::ENUM('sad', 'ok', 'happy')", "happy", "happy"),
    ("'{\"a\": 1}'::JSON", '{"a": 1}', '{"a": 1}'),
    ("true", True, "true"),
    ("NULL", None, ""),
]
if UTC_HERE:
    TYPES.append(("'2024-01-02 03:04:05+00'::TIMESTAMPTZ", "2024-01-02 03:04:05+00",
                  "2024-01-02 03:04:05+00"))

INFINITIES = [
    ("'infinity'::DATE", "infinity"),
    ("'-infinity'::DATE", "-infinity"),
    ("'infinity'::TIMESTAMP", "infinity"),
    ("'-infinity'::TIMESTAMP", "-infinity"),
    ("'infinity'::TIMESTAMPTZ", "infinity"),
    ("'-infinity'::TIMESTAMPTZ", "-infinity"),
    ("'infinity'::TIMESTAMP_NS", "infinity"),
    ("'-infinity'::TIMESTAMP_MS", "-infinity"),
    ("'infinity'::TIMESTAMP_S", "infinity"),
]


@pytest.fixture
def nobody(agnes, agnes_data_dir):
    """A built analytics database, and a PAT of a user with no group and no grant."""
    make_extract(agnes_data_dir, "shop", {"orders": "SELECT range AS id FROM range(10)"})
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    return bearer(agnes.pat("nobody@example.com"))


async def query(jp_fetch, headers, body):
    return await call(jp_fetch, "agnes", "api", "query", method="POST", headers=headers,
                      body=body)


async def json_and_csv(jp_fetch, headers, sql):
    resp = await query(jp_fetch, headers, {"sql": sql})
    assert resp.code == 200, resp.body
    out = json.loads(resp.body)
    resp = await query(jp_fetch, headers, {"sql": sql, "format": "csv"})
    assert resp.code == 200, resp.body
    rows = list(csv.reader(io.StringIO(resp.body.decode())))
    return out, rows


async def test_every_type_in_json_and_csv(jp_fetch, nobody):
    """One query holds every type, one column each: each value is exactly the documented one."""
    sql = "SELECT " + ", ".join(f"{expr} AS c{i}" for i, (expr, _, _) in enumerate(TYPES))
    out, rows = await json_and_csv(jp_fetch, nobody, sql)
    assert out["columns"] == [f"c{i}" for i in range(len(TYPES))]
    assert rows[0] == out["columns"]
    for i, (expr, want_json, want_csv) in enumerate(TYPES):
        assert out["rows"][0][i] == want_json, expr
        assert type(out["rows"][0][i]) is type(want_json), expr
        assert rows[1][i] == want_csv, expr
    assert out["types"][:3] == ["INTEGER[]", "STRUCT(a INTEGER, b VARCHAR)", "MAP(VARCHAR, INTEGER)"]
    assert "NULL" in out["types"] and "UHUGEINT" in out["types"]


@pytest.mark.parametrize(("expr", "want_json", "want_csv"), TYPES, ids=[t[0][:40] for t in TYPES])
async def test_each_type_alone(jp_fetch, nobody, expr, want_json, want_csv):
    """Each type alone, and among ordinary rows (a column of one type, several batches)."""
    sql = f"SELECT {expr} AS v, range AS n FROM range(3000)"
    out, rows = await json_and_csv(jp_fetch, nobody, sql)
    assert [r[0] for r in out["rows"]] == [want_json] * 3000
    assert [r[1] for r in out["rows"]] == list(range(3000))
    assert rows[0] == ["v", "n"] and len(rows) == 3001
    assert {r[0] for r in rows[1:]} == {want_csv}


@pytest.mark.parametrize(("expr", "want"), INFINITIES)
async def test_infinite_dates_and_timestamps(jp_fetch, nobody, expr, want):
    out, rows = await json_and_csv(jp_fetch, nobody, f"SELECT {expr} AS v, 1 AS n")
    assert out["rows"] == [[want, 1]]
    assert rows == [["v", "n"], [want, "1"]]


async def test_arrow_is_unchanged_for_the_magics(jp_fetch, nobody):
    """Arrow keeps DuckDB's own Arrow types (the magics' client reads them)."""
    import pyarrow as pa

    body = {"sql": "SELECT [1, 2] AS l, DATE '2024-01-02' AS d", "format": "arrow"}
    resp = await query(jp_fetch, nobody, body)
    assert resp.code == 200
    table = pa.ipc.open_stream(io.BytesIO(resp.body)).read_all()
    assert table.schema.field("l").type == pa.list_(pa.int32()) or pa.types.is_list(
        table.schema.field("l").type)
    assert pa.types.is_date32(table.schema.field("d").type)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"sql": "SELECT \'\\ud800\'"}', "lone surrogate"),
        ('{"sql": "SELECT $p", "params": {"p": "\\udfff"}}', "lone surrogate"),
        (json.dumps({"sql": "SELECT " + "(" * 150 + "1" + ")" * 150}), "deeper than 100"),
        (json.dumps({"sql": "SELECT " + "(SELECT " * 150 + "1" + ")" * 150}), "deeper than 100"),
        (json.dumps({"sql": "SELECT " + "[" * 500 + "1" + "]" * 500}), "deeper than 100"),
        (json.dumps({"sql": "SELECT " + "NOT " * 900 + "true"}), "nested too deeply"),
        (json.dumps({"sql": "SELECT " + " + ".join(["1"] * 900)}), "nested too deeply"),
        ('{"sql": "SELECT 1", "params": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "nested too deeply"),
        ('{"sql": "SELECT 1", "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
         "nested too deeply"),
    ],
    ids=["sql-surrogate", "param-surrogate", "parens", "subqueries", "lists", "nots", "sums",
         "json-arrays", "json-objects"],
)
async def test_unrepresentable_input_is_400(jp_fetch, nobody, body, message):
    resp = await query(jp_fetch, nobody, body.encode())
    assert resp.code == 400, resp.body
    assert message in json.loads(resp.body)["message"]
    assert "Traceback" not in resp.body.decode()


async def test_nesting_within_the_limit_runs(jp_fetch, nobody):
    sql = "SELECT " + "(" * 100 + "1" + ")" * 100 + " AS v, '((((' AS s -- " + "(" * 200
    resp = await query(jp_fetch, nobody, {"sql": sql})
    assert resp.code == 200, resp.body
    assert json.loads(resp.body)["rows"] == [[1, "(((("]]
