"""The dashboard rules in jupyter_agnes.auth.rbac (pure functions)."""

from __future__ import annotations

import pytest

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal


def who(*grants: tuple[str, str], admin: bool = False) -> Principal:
    return Principal(7, "v@example.com", "V", ("g",), admin, "session", grants=frozenset(grants))


SALES = ("dashboard", "dashboards/sales.ipynb")


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("dashboards/sales.ipynb", "dashboards/sales.ipynb"),
        ("/dashboards/sales.ipynb", "dashboards/sales.ipynb"),
        ("dashboards/../private/secret.ipynb", None),
        ("dashboards/./sales.ipynb", None),
        ("dashboards//sales.ipynb", None),
        ("dashboards\\sales.ipynb", None),
        ("dashboards/sales.ipynb\x00", None),
        ("", None),
        ("x" * 2000, None),
    ],
)
def test_normalize_dashboard_path(raw, norm):
    assert rbac.normalize_dashboard_path(raw) == norm


def test_open_needs_the_exact_grant_or_lab():
    viewer = who(SALES)
    assert rbac.may_open_dashboard(viewer, "dashboards/sales.ipynb")
    assert not rbac.may_open_dashboard(viewer, "dashboards/Sales.ipynb")
    assert not rbac.may_open_dashboard(viewer, "dashboards/other.ipynb")
    assert not rbac.may_open_dashboard(viewer, "dashboards/x/../sales.ipynb")
    assert rbac.may_open_dashboard(who(("lab", "*")), "anything/at/all.ipynb")
    assert rbac.may_open_dashboard(who(admin=True), "dashboards/other.ipynb")
    assert rbac.may_open_dashboard(who(("dashboard", "*")), "dashboards/other.ipynb")


def test_files_only_next_to_a_granted_dashboard():
    viewer = who(SALES)
    assert rbac.may_read_dashboard_file(viewer, "dashboards/logo.png")
    assert rbac.may_read_dashboard_file(viewer, "dashboards/img/chart.svg")
    assert not rbac.may_read_dashboard_file(viewer, "dashboards/other.ipynb")
    assert not rbac.may_read_dashboard_file(viewer, "private/salaries.png")
    assert not rbac.may_read_dashboard_file(viewer, "dashboards-evil/logo.png")
    assert not rbac.may_read_dashboard_file(viewer, "dashboards/../private/salaries.png")
    assert not rbac.may_read_dashboard_file(who(), "dashboards/logo.png")
    root = who(("dashboard", "top.ipynb"))
    assert rbac.may_read_dashboard_file(root, "logo.png")
    assert not rbac.may_read_dashboard_file(root, "private/salaries.png")


def test_tree_is_for_lab_users():
    assert not rbac.may_browse_dashboard_tree(who(SALES))
    assert rbac.may_browse_dashboard_tree(who(("lab", "*")))
    assert rbac.may_browse_dashboard_tree(who(admin=True))


# --- ids: the name under dashboards/; older grants name the path ------------------------


@pytest.mark.parametrize(
    "path, ident",
    [
        ("dashboards/sales.ipynb", "sales"),
        ("/dashboards/team/kpis.ipynb", "team/kpis"),
        ("dashboards/dashboards/x.ipynb", "dashboards/x"),
        ("sales.ipynb", None),
        ("private/secret.ipynb", None),
        ("dashboards/logo.png", None),
        ("dashboards/.ipynb", None),
        ("dashboards/../private/secret.ipynb", None),
    ],
)
def test_dashboard_id_is_the_name_under_the_folder(path, ident):
    assert rbac.dashboard_id(path) == ident
    if ident is not None:
        assert rbac.dashboard_path(ident) == path.lstrip("/")


@pytest.mark.parametrize(
    "given, stored",
    [
        ("sales", "sales"),
        ("team/kpis", "team/kpis"),
        ("dashboards/sales.ipynb", "sales"),  # today's path form, stored as the id
        ("*", "*"),
        ("sales.ipynb", None),  # a path relative to the root: not under dashboards/
        ("../private/secret", None),
        ("team//kpis", None),
        ("sales\x1b[2J", None),
        ("x" * 2000, None),
    ],
)
def test_canonical_grant(given, stored):
    assert rbac.canonical_dashboard_grant(given) == stored


def test_id_and_legacy_path_grants_open_the_same_dashboard():
    for grant in (("dashboard", "sales"), SALES):
        viewer = who(grant)
        assert rbac.may_open_dashboard(viewer, "dashboards/sales.ipynb")
        assert rbac.may_read_dashboard_file(viewer, "dashboards/logo.png")
        assert not rbac.may_open_dashboard(viewer, "dashboards/team/sales.ipynb")
        assert not rbac.may_open_dashboard(viewer, "sales.ipynb")
        assert not rbac.may_read_dashboard_file(viewer, "private/salaries.png")
    nested = who(("dashboard", "team/kpis"))
    assert rbac.may_open_dashboard(nested, "dashboards/team/kpis.ipynb")
    assert rbac.may_read_dashboard_file(nested, "dashboards/team/chart.png")
    assert not rbac.may_read_dashboard_file(nested, "dashboards/logo.png")
    # an old grant of a notebook outside dashboards/ keeps opening it
    assert rbac.may_open_dashboard(
        who(("dashboard", "private/report.ipynb")), "private/report.ipynb"
    )


def test_an_id_never_ends_in_the_notebook_suffix_and_a_wildcard_names_no_file():
    assert rbac.dashboard_path("sales.ipynb") is None  # that spelling is a path, not an id
    assert rbac.dashboard_path("sales") == "dashboards/sales.ipynb"
    assert rbac.granted_dashboard_path("*") is None


def test_a_notebook_named_like_the_wildcard_is_no_dashboard_and_grants_nothing_more():
    """Its id would be `*`, the grant of every dashboard: granting the notebook must not
    grant them all, and a `*` grant must not name one file."""
    assert rbac.dashboard_id("dashboards/*.ipynb") is None
    assert rbac.dashboard_id("dashboards/team/*.ipynb") == "team/*"  # `*` only as the whole id
    assert rbac.canonical_dashboard_grant("dashboards/*.ipynb") is None
    assert rbac.dashboard_path("*") is None
    only_sales = who(("dashboard", "sales"))
    assert not rbac.may_open_dashboard(only_sales, "dashboards/*.ipynb")
    assert rbac.may_open_dashboard(who(("dashboard", "*")), "dashboards/sales.ipynb")


def test_lab_reads_any_file_and_only_dashboard_grants_share_a_folder():
    assert rbac.may_read_dashboard_file(who(("lab", "*")), "private/salaries.png")
    assert not rbac.may_read_dashboard_file(who(("table", "sales")), "dashboards/logo.png")
    # every grant is looked at, whatever order the set yields them in
    for n in range(10):
        others = {("table", f"t{n}_{i}") for i in range(10)}
        assert rbac.may_read_dashboard_file(who(SALES, *others), "dashboards/logo.png")


def test_paths_may_hold_spaces_and_reach_1024_characters():
    assert rbac.normalize_dashboard_path("dashboards/my sales.ipynb") == "dashboards/my sales.ipynb"
    longest = "d/" + "x" * 1022
    assert rbac.normalize_dashboard_path(longest) == longest
    assert rbac.normalize_dashboard_path(longest + "x") is None


def test_an_id_with_a_trailing_slash_names_nothing():
    assert rbac.dashboard_id("dashboards/x/.ipynb") is None
    assert rbac.dashboard_path("x/") is None


def test_only_slashes_are_trimmed_and_delete_is_a_control_character():
    assert rbac.normalize_dashboard_path("/Xdir/fileX/") == "Xdir/fileX"
    assert rbac.normalize_dashboard_path("dashboards/a\x7fb.ipynb") is None
