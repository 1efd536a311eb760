"""The statement checker on its own (no sandbox, no data): what it lets through, what it
refuses and with which message, and the parse-only table listing the magics use."""

from __future__ import annotations

import pytest

from jupyter_agnes.query.classify import check_query, referenced_tables
from jupyter_agnes.query.errors import QueryRefused, TableNotGranted


def refusal(sql: str, granted: set[str] | None = None) -> str:
    with pytest.raises(QueryRefused) as exc:
        check_query(sql, granted or set())
    return exc.value.message


@pytest.mark.parametrize("sql", ["SELECT * FROM main.orders", "SELECT * FROM Main.Orders"])
def test_main_schema_is_the_same_table(sql):
    """`main.<name>` is the granted table itself, in any letter case; only other schemas
    and catalogs are refused."""
    assert check_query(sql, {"orders"}).tables == frozenset({"orders"})


def test_error_lines_are_cut_to_500_characters():
    message = refusal("SELEC" + "x" * 2000)  # the error quotes the whole token
    assert message.startswith("Parser Error") and len(message) == 500


def test_referenced_tables_refuses_what_is_not_a_read():
    with pytest.raises(QueryRefused, match="Only SELECT statements"):
        referenced_tables("INSERT INTO t VALUES (1)")


def test_referenced_tables_cuts_a_parse_error_to_500_characters():
    with pytest.raises(QueryRefused) as exc:
        referenced_tables("SELEC" + "x" * 2000)  # the error quotes the whole token
    assert exc.value.message.startswith("syntax error") and len(exc.value.message) == 500


def test_referenced_tables_lists_base_tables_lower_cased_without_ctes():
    sql = 'WITH c AS (SELECT 1) SELECT * FROM "Orders" JOIN main.People ON true, c'
    assert referenced_tables(sql) == {"orders", "people"}
    assert referenced_tables("SELECT * FROM range(3)") == set()


def test_ungranted_table_is_refused_with_its_name():
    with pytest.raises(TableNotGranted) as exc:
        check_query("SELECT * FROM secret", {"orders"})
    assert exc.value.message == "Table secret not found"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM main.range(3)", "Table function range() is not allowed"),
        ("SELECT * FROM system.main.range(3)", "Table function range() is not allowed"),
        ("SELECT system.main.abs(1)", "Qualified function abs() is not allowed"),
        ("SELECT temp.main.abs(1)", "Qualified function abs() is not allowed"),
        ("SELECT pg_catalog.abs(1)", "Qualified function abs() is not allowed"),
    ],
)
def test_qualified_functions_are_refused(sql, message):
    """A catalog or schema in front of a function could reach another database's macros;
    only `main.` (the sandbox's own) is accepted for scalar functions."""
    assert refusal(sql) == message


def test_main_qualified_scalar_function_is_allowed():
    assert check_query("SELECT main.abs(-1)", set()).tables == frozenset()


def test_refusals_quote_at_most_64_characters_of_a_name():
    long = "f" * 100
    assert refusal(f"SELECT * FROM {long}()") == f"Table function {long[:64]}() is not allowed"
    assert refusal(f"SELECT pg_{long}()") == f"Function pg_{long[:61]}() is not allowed"
    assert refusal(f"SELECT s.{long}()") == f"Qualified function {long[:64]}() is not allowed"


def test_show_is_refused_with_where_to_look_instead():
    assert refusal("SHOW TABLES") == "SHOW is not supported; use the catalog or DESCRIBE <table>"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (None, "sql must be a non-empty string"),
        ("  \n", "sql must be a non-empty string"),
        ("SELECT 1 -- " + "x" * 100_000, "sql is longer than 100000 characters"),
        ("SELECT 1\x00", "sql contains a NUL byte"),
        ("SELECT '\ud800'", "sql holds a lone surrogate, which is not text"),
        ("SELECT " + "(" * 101 + "1" + ")" * 101, "sql nests brackets deeper than 100 levels"),
        # deep without brackets: DuckDB's parse tree is deeper than Python recurses
        ("SELECT " + " + ".join(["1"] * 900), "sql is nested too deeply"),
    ],
)
def test_input_guards(sql, message):
    assert refusal(sql) == message


def test_limits_are_inclusive():
    assert check_query("SELECT 1 --" + "x" * (100_000 - 11), set()).sql.startswith("SELECT 1")
    assert check_query("SELECT " + "(" * 100 + "1" + ")" * 100, set()).tables == frozenset()
    assert check_query("SELECT 'Zürich'", set()).tables == frozenset()


def test_nesting_depth_counts_only_brackets_outside_quotes_and_comments():
    from jupyter_agnes.query.classify import nesting_depth

    assert nesting_depth("SELECT 1") == 0
    assert nesting_depth("f(g([1]), {'a': (2)})") == 3
    assert nesting_depth("(()) (((x)))") == 3
    assert nesting_depth("((()(())))") == 4  # a closer goes back one level, not two
    assert nesting_depth("'((((' \"((((\" -- ((((\n /* (((( */ (x)") == 1
    assert nesting_depth(")))) ((x))") == 2  # stray closers never go below zero


def test_check_cache_keeps_each_statement_under_its_own_digest():
    from jupyter_agnes.query.classify import CheckCache

    one = CheckCache(size=1)
    one.check("SELECT 1", frozenset(), "b")
    one.check("SELECT 1", frozenset(), "b")
    assert (one.hits, len(one)) == (1, 1)  # a cache of one still caches
    cache = CheckCache(size=4)
    longest = "SELECT 1 --" + "x" * (CheckCache.MAX_SQL_CHARS - 11)
    for sql in ("SELECT 1", "SELECT 2", longest, longest):
        cache.check(sql, frozenset(), "b")
    assert (cache.hits, len(cache)) == (1, 3)  # MAX_SQL_CHARS itself is still cached


def test_an_error_without_words_is_named_by_its_type():
    from jupyter_agnes.query.classify import _first_line

    assert _first_line(ValueError()) == "ValueError"
    assert _first_line(ValueError("  \n first\nsecond")) == "first"


def test_check_cache_counts_every_hit_and_refuses_a_lone_surrogate_as_sql_does():
    from jupyter_agnes.query.classify import CheckCache

    cache = CheckCache(size=4)
    for _ in range(3):
        cache.check("SELECT 1", frozenset(), "b")
    assert (cache.hits, cache.misses) == (2, 1)
    with pytest.raises(QueryRefused, match="lone surrogate"):  # hashed, then refused
        cache.check("SELECT '\ud800'", frozenset(), "b")


def test_check_cache_holds_each_granted_set_once_even_after_forgetting_old_ones():
    """Equal granted sets (a new frozenset per request) are kept as one object, also after
    the cache forgot the sets no entry uses any more."""
    from jupyter_agnes.query.classify import CheckCache

    cache = CheckCache(size=2)
    for n in range(3):  # the third set goes past the bound: unused sets are forgotten
        cache.check(f"SELECT {n}", frozenset({f"t{n}"}), "b")
    (kept,) = [k[1] for k in cache._items if k[1] == frozenset({"t2"})]
    for _ in range(2):
        cache.check("SELECT 9", frozenset({"t2"}), "b")  # an equal set, another object
    assert cache.hits == 1 and [k[1] for k in cache._items][-1] is kept


def test_check_cache_keeps_256_statements_by_default():
    from jupyter_agnes.query.classify import CheckCache

    assert CheckCache().size == 256 and CheckCache(-3).size == 0


def test_each_thread_parses_on_one_database_of_its_own():
    import threading

    from jupyter_agnes.query.classify import _parser

    mine = _parser()
    seen = []  # in a new thread: the first call makes its database, the second reuses it
    worker = threading.Thread(target=lambda: seen.extend((_parser(), _parser())))
    worker.start()
    worker.join()
    assert seen[0] is seen[1] and seen[0] is not mine and _parser() is mine
