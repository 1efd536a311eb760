"""What a principal may reach (auth/principal.py): the owner's rights, narrowed by the
scopes of the credential. Pure: every combination of admin, service, Lab grant and scope."""

from __future__ import annotations

from itertools import combinations

import pytest

from jupyter_agnes.auth.principal import ALL_SCOPES, SCOPES, Operator, Principal

SCOPE_SETS = [frozenset(c) for n in range(len(SCOPES) + 1) for c in combinations(SCOPES, n)]


def principal(
    *, admin: bool = False, service: bool = False, lab: bool = False,
    scopes: frozenset[str] = ALL_SCOPES, grants: tuple[tuple[str, str], ...] = (),
) -> Principal:
    held = frozenset(grants) | ({("lab", "*")} if lab else set())
    return Principal(3, "p@example.com", "P", ("g",), admin, "pat", is_service=service,
                     grants=held, credential_id="c1", scopes=scopes)


@pytest.mark.parametrize("scopes", SCOPE_SETS)
@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("lab", [False, True])
@pytest.mark.parametrize("service", [False, True])
def test_every_right_is_the_owners_narrowed_by_the_credential(scopes, admin, lab, service):
    p = principal(admin=admin, service=service, lab=lab, scopes=scopes)
    data, lab_scope, admin_scope = ("data" in scopes, "lab" in scopes, "admin" in scopes)
    assert [p.has_scope(s) for s in SCOPES] == [data, lab_scope, admin_scope]
    assert p.holds_lab == (admin or lab)
    assert p.lab_access == (lab_scope and (admin or lab))
    assert p.admin_access == (admin_scope and admin)
    assert p.may_run_sync == ((admin_scope and admin) or service)
    assert p.may_read_sync == (data and (admin or service))
    held = {"data"} | ({"lab"} if admin or lab else set()) | ({"admin"} if admin else set())
    assert p.scopes_held() == held
    assert p.effective_scopes == tuple(s for s in SCOPES if s in scopes and s in held)
    assert p.as_me()["lab_access"] == p.lab_access
    assert p.as_me()["scopes"] == list(p.effective_scopes)


def test_data_rights_need_the_data_scope():
    granted = principal(grants=(("table", "orders"),))
    assert granted.has_grant("table", "orders") and not granted.has_grant("table", "other")
    assert not granted.has_grant("dashboard", "orders")  # the type is part of the grant
    without_data = principal(grants=(("table", "orders"),), scopes=frozenset({"lab"}))
    assert not without_data.has_grant("table", "orders")
    admin = principal(admin=True)
    assert admin.has_grant("table", "anything")
    assert not principal(admin=True, scopes=frozenset({"admin"})).has_grant("table", "x")


def test_me_shows_who_and_how():
    p = principal(lab=True, scopes=frozenset({"data", "lab"}))
    assert p.as_me() == {
        "id": 3,
        "email": "p@example.com",
        "name": "P",
        "groups": ["g"],
        "is_admin": False,
        "lab_access": True,
        "auth": "pat",
        "scopes": ["data", "lab"],
    }
    assert principal(admin=True).as_me()["is_admin"] is True


def test_the_operator_is_nobody_signed_in():
    assert Operator().email == "cli" and Operator().user_id is None


# --- rbac: the authorizer's pure rules ----------------------------------------------------


def test_a_missing_scope_is_named_only_when_the_owner_holds_the_right():
    from jupyter_agnes.auth.rbac import scope_refusal

    data_only = principal(admin=True, scopes=frozenset({"data"}))
    assert scope_refusal(data_only, "lab") == "This token does not carry the 'lab' scope"
    assert scope_refusal(data_only, "admin") == "This token does not carry the 'admin' scope"
    assert scope_refusal(data_only, "data") is None and scope_refusal(data_only, None) is None
    # an owner without the right is told by the API's own rights check
    assert scope_refusal(principal(scopes=frozenset({"data"})), "lab") is None
    assert scope_refusal(principal(lab=True, scopes=frozenset({"data"})), "lab") is not None


@pytest.mark.parametrize("resource", ["kernels", "contents", "terminals", "some-extension"])
def test_server_resources_are_lab_and_identity_is_anyones(resource):
    from jupyter_agnes.auth import rbac

    viewer, analyst = principal(), principal(lab=True)
    no_lab_scope = principal(lab=True, scopes=frozenset({"data"}))
    assert rbac.may_use_server_resource(analyst, resource)
    assert not rbac.may_use_server_resource(viewer, resource)
    assert not rbac.may_use_server_resource(no_lab_scope, resource)
    assert rbac.may_use_server_resource(viewer, "identity")
    assert rbac.has_lab_access(analyst) and not rbac.has_lab_access(no_lab_scope)
    assert rbac.may_ask_llm(analyst) and not rbac.may_ask_llm(viewer)
    assert not rbac.may_ask_llm(no_lab_scope)


def test_metrics_are_for_admins_whatever_the_credential():
    from jupyter_agnes.auth.rbac import may_read_metrics

    assert may_read_metrics(principal(admin=True, scopes=frozenset({"data"})))
    assert not may_read_metrics(principal(lab=True, service=True))


def test_a_kernel_is_its_starters_and_the_admins():
    from jupyter_agnes.auth.rbac import may_use_kernel, personal_workspace

    me = principal(lab=True)
    assert may_use_kernel(me, me.user_id) and not may_use_kernel(me, me.user_id + 1)
    assert not may_use_kernel(me, None)  # no recorded owner: the admins'
    admin = principal(admin=True)
    assert may_use_kernel(admin, None) and may_use_kernel(admin, 99)
    assert personal_workspace(me) == f"agnes-user-{me.user_id}"
