"""Which ids a new grant may name (`auth.grant_targets`), dashboard titles and ids
(`dashboards.index`), and `admin_ops` storing and finding a dashboard grant by either form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from jupyter_agnes.auth import admin_ops
from jupyter_agnes.auth.grant_targets import (
    MAX_SHOWN,
    KnownResources,
    known_list,
    known_resources,
    shown,
)
from jupyter_agnes.auth.principal import Operator, Principal
from jupyter_agnes.dashboards.index import dashboard_ids, list_dashboards, visible_dashboards
from jupyter_agnes.paths import resolve_data_dir
from jupyter_agnes.store import directory
from jupyter_agnes.store.directory import DirectoryError
from jupyter_agnes.store.engine import Store
from jupyter_agnes.store.models import Grant
from tests.support.migrations import open_migrated_store

REPO = Path(__file__).resolve().parents[2]
KNOWN = KnownResources(tables=("orders", "customers"), dashboards=("sales", "team/kpis"))


def refusal(known: KnownResources, rtype: str, rid: str) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        known.canonical(rtype, rid)
    return info.value


def test_known_ids_pass_and_are_stored_canonically():
    assert KNOWN.canonical("table", "orders") == "orders"
    assert KNOWN.canonical("table", "ORDERS") == "orders"
    assert KNOWN.canonical("dashboard", "sales") == "sales"
    assert KNOWN.canonical("dashboard", "dashboards/team/kpis.ipynb") == "team/kpis"
    for rtype in ("table", "dashboard", "lab"):
        assert KNOWN.canonical(rtype, "*") == "*"


def test_unknown_ids_are_refused_with_the_known_ones():
    exc = refusal(KNOWN, "dashboard", "slaes")
    assert (exc.status, exc.code) == (404, "unknown_resource")
    assert str(exc) == "No dashboard 'slaes'; known dashboards: sales, team/kpis"
    exc = refusal(KNOWN, "table", "ordrs")
    assert str(exc) == "No table 'ordrs'; known tables: customers, orders"
    exc = refusal(KNOWN, "dashboard", "sales.ipynb")  # a root path: not under dashboards/
    assert exc.status == 400 and "known dashboards: sales, team/kpis" in str(exc)
    exc = refusal(KNOWN, "lab", "analysts")
    assert (str(exc), exc.code, exc.status) == (
        "lab grants take '*' only: Lab access is all or nothing", "invalid_resource_id", 400)


@pytest.mark.parametrize(
    "rid",
    ["../../etc/passwd", "dashboards/../private/x.ipynb", "sa\x00les", "a\x1b[31m", "x" * 600],
)
def test_hostile_dashboard_ids_are_refused_and_not_echoed_raw(rid):
    exc = refusal(KNOWN, "dashboard", rid)
    assert exc.status in (400, 404)
    assert "known dashboards: sales, team/kpis" in str(exc)
    assert str(exc).isprintable() and len(str(exc)) < 200


def test_nothing_known_says_what_to_do():
    empty = KnownResources(tables=None, dashboards=(), dashboards_folder="/srv/x/dashboards")
    assert "run `jupyter agnes rebuild`" in str(refusal(empty, "table", "orders"))
    assert str(refusal(empty, "dashboard", "sales")) == (
        "No dashboard 'sales'; known dashboards: none in /srv/x/dashboards"
    )


def test_long_known_lists_are_cut():
    many = KnownResources(tables=tuple(f"t{i:03}" for i in range(100)), dashboards=())
    message = str(refusal(many, "table", "nope"))
    assert f"t{MAX_SHOWN - 1:03}" in message and f"t{MAX_SHOWN:03}" not in message
    assert message.endswith(f"(and {100 - MAX_SHOWN} more)")


# --- the dashboards folder: ids and titles -------------------------------------------------


def notebook(path: Path, *, title: str | None = None, heading: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["intro\n", f"# {heading}\n"]}]
    meta = {"title": title} if title is not None else {}
    path.write_text(json.dumps({"cells": cells if heading else [], "metadata": meta}))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    sales = root / "dashboards" / "sales.ipynb"
    sales.parent.mkdir(parents=True)
    sales.write_bytes((REPO / "notebooks" / "dashboards" / "sales.ipynb").read_bytes())
    notebook(root / "dashboards" / "team" / "kpis.ipynb", title="KPIs <b>&</b>", heading="no")
    notebook(root / "dashboards" / "plain.ipynb")
    (root / "dashboards" / "broken.ipynb").write_text("{not json")
    (root / "dashboards" / "list.ipynb").write_text("[1, 2]")
    notebook(root / "dashboards" / "ctl.ipynb", heading="Evil\x1b[2J\u202etitle " + "x" * 500)
    notebook(root / "dashboards" / ".hidden.ipynb", heading="Hidden")
    notebook(root / "private" / "report.ipynb", heading="Private report")
    return root


def test_ids_and_titles(root: Path):
    found = {d.id: d for d in list_dashboards(root)}
    assert sorted(found) == ["broken", "ctl", "list", "plain", "sales", "team/kpis"]
    assert dashboard_ids(root) == sorted(found)
    assert found["sales"].title == "Sales dashboard"  # the first `# ` heading
    assert found["team/kpis"].title == "KPIs <b>&</b>"  # metadata wins; escaped by the page
    assert found["team/kpis"].path == "dashboards/team/kpis.ipynb"
    for fallback in ("plain", "broken", "list"):
        assert found[fallback].title == fallback
    title = found["ctl"].title
    assert title.isprintable() and title.startswith("Evil [2J") and len(title) == 200


def test_who_sees_which(root: Path):
    def titles(*grants: tuple[str, str], admin: bool = False) -> list[str]:
        who = Principal(7, "v@x.com", "", (), admin, "session", grants=frozenset(grants))
        return [d.title for d in visible_dashboards(root, who)]

    assert len(titles(admin=True)) == 6 and titles(admin=True) == titles(("lab", "*"))
    assert titles(("dashboard", "sales")) == ["Sales dashboard"]
    assert titles(("dashboard", "dashboards/sales.ipynb")) == ["Sales dashboard"]
    assert titles(("dashboard", "private/report.ipynb")) == ["Private report"]  # old grant
    assert titles(("dashboard", "gone")) == []
    assert titles() == []


def test_known_resources_reads_the_folder(root: Path):
    known = known_resources(None, root)
    assert known.tables is None and "team/kpis" in known.dashboards
    assert known.dashboards_folder == str(root / "dashboards")
    assert known_resources(["b", "a"], None) == KnownResources(("a", "b"), ())
    assert known_resources(["b", "a"], root).tables == ("a", "b")  # a root keeps the tables


# --- admin_ops: the path form is stored as the id, and found by either form ----------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = open_migrated_store(resolve_data_dir(tmp_path / "data"))
    yield store
    store.close()


def test_path_form_is_stored_as_the_id_and_found_either_way(store: Store):
    cli = Operator()
    with store.write() as s:
        grant = admin_ops.add_grant(
            s,
            cli,
            "viewers",
            "dashboard",
            "dashboards/sales.ipynb",
            known=KNOWN,
            create_missing_group=True,
        )
        assert grant.resource_id == "sales"
    with pytest.raises(DirectoryError) as info, store.write() as s:
        admin_ops.add_grant(s, cli, "viewers", "dashboard", "sales", known=KNOWN)
    assert str(info.value) == "viewers already has grant dashboard:sales"
    with store.write() as s:
        admin_ops.remove_grant(
            s, cli, admin_ops.find_grant(s, "viewers", "dashboard", "dashboards/sales.ipynb")
        )
        # a row stored before ids existed: revoked by id, and it blocks a duplicate
        group = directory.get_group(s, "viewers")
        directory.add_grant(s, group, "dashboard", "dashboards/team/kpis.ipynb", "old")
    with pytest.raises(DirectoryError) as info, store.write() as s:
        admin_ops.add_grant(s, cli, "viewers", "dashboard", "team/kpis", known=KNOWN)
    assert info.value.status == 409
    with store.write() as s:
        old = admin_ops.find_grant(s, "viewers", "dashboard", "team/kpis")
        assert old.resource_id == "dashboards/team/kpis.ipynb"
        admin_ops.remove_grant(s, cli, old)


def test_revoking_by_value_removes_every_spelling(store: Store) -> None:
    """An old path-form dashboard grant beside its id form, and a table grant in the
    catalog's case: `revoke-grant` must leave no spelling behind that still opens it."""
    cli = Operator()
    with store.write() as s:
        admin_ops.add_grant(s, cli, "viewers", "table", "ORDERS", known=KNOWN,
                            create_missing_group=True)
        group = directory.get_group(s, "viewers")
        directory.add_grant(s, group, "dashboard", "sales", "new")
        directory.add_grant(s, group, "dashboard", "dashboards/sales.ipynb", "old")
    with store.write() as s:
        admin_ops.revoke_grant(s, cli, "viewers", "dashboard", "sales")
        admin_ops.revoke_grant(s, cli, "viewers", "table", "Orders")
    with store.read() as s:
        group_id = directory.get_group(s, "viewers").id
        left = s.scalars(select(Grant).where(Grant.group_id == group_id)).all()
    assert [(g.resource_type, g.resource_id) for g in left] == []


def test_table_refusals_are_404_unknown_resource_with_exact_words():
    cases = {
        KnownResources(tables=None, dashboards=()): "No table 'orders': no tables are known "
        "yet; run `jupyter agnes rebuild` (or `sample-data`) first",
        KnownResources(tables=(), dashboards=()): "No table 'orders'; known tables: none",
        KnownResources(tables=("b", "a"), dashboards=()): "No table 'orders'; known tables: a, b",
    }
    for known, text in cases.items():
        exc = refusal(known, "table", "orders")
        assert (str(exc), exc.code, exc.status) == (text, "unknown_resource", 404)
    # a table is found whatever its case, and stored as the catalog spells it
    assert KnownResources(tables=("Orders",), dashboards=()).canonical("table", "oRDERS") == "Orders"


def test_a_refused_id_is_quoted_printable_and_short():
    assert shown("sa\x00les\u202e") == "'sa?les?'"
    assert shown("x" * 60) == repr("x" * 60)
    assert shown("x" * 61) == repr("x" * 57 + "...")
    assert known_list(("b", "a")) == "a, b"
    many = tuple(f"t{i:03}" for i in range(MAX_SHOWN + 1))
    assert known_list(many) == ", ".join(many[:MAX_SHOWN]) + " (and 1 more)"
    assert known_list(many[:MAX_SHOWN]) == ", ".join(many[:MAX_SHOWN])  # all shown: no count


def test_dashboard_refusals_without_a_folder_say_none():
    exc = refusal(KnownResources(tables=(), dashboards=()), "dashboard", "sales")
    assert (str(exc), exc.code, exc.status) == (
        "No dashboard 'sales'; known dashboards: none", "unknown_resource", 404)
    exc = refusal(KNOWN, "dashboard", "../x")
    assert (exc.code, exc.status) == ("invalid_resource_id", 400)
