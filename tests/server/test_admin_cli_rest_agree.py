"""The CLI and the admin REST API run the same core operations, so where they used to
disagree they now give the same answer: duplicates, grant types, audit rows. The CLI keeps
its one documented convenience: `grant` and `group add-member` create a missing group."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from jupyter_agnes.cli import build_parser, main
from jupyter_agnes.store.models import RESOURCE_TYPES, AuditEntry
from tests.support.apihelpers import bearer, call
from tests.support.datahelpers import build_sample_analytics


@pytest.fixture
def agnes_data_dir(data_dir):
    """Tables exist (a grant must name a known one): the sample data, built before start."""
    return build_sample_analytics(data_dir)


@pytest.fixture
def cli(agnes_data_dir, capsys):
    """Run `jupyter agnes …` in this process on the server's data dir: (status, stderr)."""

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            code = main([*args, "--data-dir", str(agnes_data_dir)])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    return run


async def rest(jp_fetch, token: str, method: str, *path: Any, body: Any = None):
    resp = await call(
        jp_fetch,
        "agnes",
        "api",
        "admin",
        *map(str, path),
        method=method,
        headers=bearer(token),
        body=body,
    )
    return resp.code, (json.loads(resp.body) if resp.body else None)


def audit(agnes, action: str) -> list[AuditEntry]:
    with agnes.store.read() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        s.expunge_all()
        return rows


async def test_duplicates_are_refused_the_same_way(jp_fetch, agnes, cli):
    admin = agnes.pat("boss@example.com", admin=True)
    code, _ = await rest(jp_fetch, admin, "POST", "users", body={"email": "ann@example.com"})
    assert code == 201
    code, body = await rest(jp_fetch, admin, "POST", "users", body={"email": "ann@example.com"})
    assert code == 409
    assert cli("user", "add", "ann@example.com") == (1, f"error: {body['message']}\n")

    code, group = await rest(jp_fetch, admin, "POST", "groups", body={"name": "analysts"})
    assert code == 201
    member = {"email": "ann@example.com"}
    code, _ = await rest(jp_fetch, admin, "POST", "groups", group["id"], "members", body=member)
    assert code == 201
    code, body = await rest(jp_fetch, admin, "POST", "groups", group["id"], "members", body=member)
    assert code == 409 and body["message"] == "ann@example.com is already a member of analysts"
    assert cli("group", "add-member", "analysts", "ann@example.com") == (
        1,
        f"error: {body['message']}\n",
    )

    grant = {"group": "analysts", "resource_type": "table", "resource_id": "orders"}
    assert cli("grant", "analysts", "table", "orders")[0] == 0
    code, body = await rest(jp_fetch, admin, "POST", "grants", body=grant)
    assert code == 409 and body["message"] == "analysts already has grant table:orders"
    assert cli("grant", "analysts", "table", "orders") == (1, f"error: {body['message']}\n")
    # one row per change that happened, none for the refusals
    assert len(audit(agnes, "group.add_member")) == 1
    assert len(audit(agnes, "grant.add")) == 1


async def test_grant_types_are_the_models_on_both_sides(jp_fetch, agnes, cli):
    grant_parser = build_parser()._subparsers._group_actions[0].choices["grant"]  # type: ignore[union-attr]
    type_arg = next(a for a in grant_parser._actions if a.dest == "type")
    assert tuple(type_arg.choices) == RESOURCE_TYPES
    admin = agnes.pat("boss@example.com", admin=True)
    bad = {"group": "Everyone", "resource_type": "root", "resource_id": "*"}
    code, body = await rest(jp_fetch, admin, "POST", "grants", body=bad)
    assert code == 400
    assert body["message"] == f"resource_type must be one of {', '.join(RESOURCE_TYPES)}"
    code, err = cli("grant", "Everyone", "root", "*")
    assert code == 2 and "invalid choice: 'root'" in err


async def test_missing_groups_404_over_rest_and_are_created_audited_by_the_cli(
    jp_fetch, agnes, cli
):
    admin = agnes.pat("boss@example.com", admin=True)
    grant = {"group": "new-team", "resource_type": "lab", "resource_id": "*"}
    code, body = await rest(jp_fetch, admin, "POST", "grants", body=grant)
    assert code == 404 and body["message"] == "Group 'new-team' not found"
    assert cli("grant", "new-team", "lab", "*") == (0, "")
    assert cli("group", "add-member", "other-team", "bo@example.com") == (0, "")
    code, _ = await rest(jp_fetch, admin, "POST", "groups", body={"name": "rest-team"})
    created = {row.resource: (row.actor, row.user_id) for row in audit(agnes, "group.create")}
    boss_id = agnes.user("boss@example.com")
    assert created == {
        "new-team": ("cli", None),
        "other-team": ("cli", None),
        "rest-team": ("boss@example.com", boss_id),
    }


async def test_removing_a_grant_leaves_the_same_audit_row(jp_fetch, agnes, cli):
    admin = agnes.pat("boss@example.com", admin=True)
    assert cli("grant", "analysts", "table", "orders")[0] == 0
    body = {"group": "analysts", "resource_type": "table", "resource_id": "customers"}
    code, grant = await rest(jp_fetch, admin, "POST", "grants", body=body)
    assert code == 201
    code, _ = await rest(jp_fetch, admin, "DELETE", "grants", grant["id"])
    assert code == 204
    assert cli("revoke-grant", "analysts", "table", "orders") == (0, "")
    rows = audit(agnes, "grant.remove")
    assert [(r.resource, r.params["type"], r.params["id"]) for r in rows] == [
        ("analysts", "table", "customers"),
        ("analysts", "table", "orders"),
    ]
    assert [r.actor for r in rows] == ["boss@example.com", "cli"]
    assert cli("revoke-grant", "analysts", "table", "orders") == (
        1,
        "error: analysts has no grant table:orders\n",
    )


async def test_revoking_a_token_twice_says_so_on_both_sides(jp_fetch, agnes, cli):
    admin = agnes.pat("boss@example.com", admin=True)
    agnes.pat("victim@example.com")
    tokens = agnes.auth.list_tokens(agnes.user("victim@example.com"))
    code, _ = await rest(jp_fetch, admin, "DELETE", "tokens", tokens[0]["id"])
    assert code == 204
    code, body = await rest(jp_fetch, admin, "DELETE", "tokens", tokens[0]["id"])
    assert code == 409 and body["message"] == "Token already revoked"
    assert cli("token", "revoke", tokens[0]["id"]) == (1, "error: Token already revoked\n")
    code, body = await rest(jp_fetch, admin, "DELETE", "tokens", "nope")
    assert code == 404
    assert cli("token", "revoke", "nope") == (1, f"error: {body['message']}\n")


@pytest.mark.parametrize("name", ["Admin\u200b", "admin", "Ops\u202e"])
async def test_a_group_name_is_refused_with_the_same_sentence(jp_fetch, agnes, cli, name):
    """One rule (auth/names.py) for REST and the CLI: a 400 there, one error line here."""
    admin = agnes.pat("boss@example.com", admin=True)
    code, body = await rest(jp_fetch, admin, "POST", "groups", body={"name": name})
    assert code == 400
    assert cli("group", "add-member", name, "bo@example.com") == (1, f"error: {body['message']}\n")
    assert cli("grant", name, "lab", "*") == (1, f"error: {body['message']}\n")
    code, _ = await rest(jp_fetch, admin, "POST", "users", body={"email": "x@example.com"})
    assert code == 201
    with agnes.store.read() as s:  # nothing was created under any spelling
        from jupyter_agnes.store.models import Group

        assert sorted(s.scalars(select(Group.name))) == ["Admin", "Everyone"]
