"""Who may open which JupyterLab workspace (rbac.personal_workspace / may_use_workspace)."""

from __future__ import annotations

import pytest

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal

ANALYST = Principal(7, "a@example.com", "A", ("analysts",), False, "session")
ADMIN = Principal(1, "boss@example.com", "Boss", ("Admin",), True, "session")


def test_each_user_has_their_own_workspace() -> None:
    assert rbac.personal_workspace(ANALYST) == "agnes-user-7"
    assert rbac.may_use_workspace(ANALYST, "agnes-user-7")


@pytest.mark.parametrize("name", ["default", "team-review", "my agnes notes"])
def test_other_names_stay_shared(name: str) -> None:
    assert rbac.may_use_workspace(ANALYST, name)


@pytest.mark.parametrize(
    "name",
    [
        "agnes-user-3",
        "agnes-user-70",
        # JupyterLab files these next to agnes-user-3, a 4-hex-digit signature apart.
        "AGNES-user-3",
        "Agnes-User-3",
        "agnes user 3",
        " agnes-user-3 ",
        "agnes-user-3!",
        "x/agnes-user-3",
        "agnes--user-3",
        "agnes-user--3",
        "%61gnes-user-3",
        "\uff41gnes-user-3",  # fullwidth a, which NFKC makes "a"
    ],
)
def test_another_users_workspace_is_refused_in_any_spelling(name: str) -> None:
    assert not rbac.may_use_workspace(ANALYST, name)
    assert rbac.may_use_workspace(ADMIN, name)
