"""Shared fixtures: a real jupyter-server (pytest-jupyter) running the Agnes extension."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from jupyter_agnes.auth.service import AuthService
    from jupyter_agnes.store.engine import Store
    from server_extension.services import AgnesServices

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# Keep every test hermetic: no telemetry, no dev shortcuts leaking in from the shell.
for _var in (
    "POSTHOG_API_KEY",
    "LOCAL_DEV_MODE",
    "SCHEDULER_API_TOKEN",
    "AGNES_JWT_SECRET",
    "AGNES_DB_URL",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
):
    os.environ.pop(_var, None)


@pytest.fixture
def agnes_data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "agnes-data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def agnes_extra_config() -> dict[str, Any]:
    """Override in a test module to add traitlets config."""
    return {}


@pytest.fixture
def jp_server_config(agnes_data_dir: Path, agnes_extra_config: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ServerApp": {"jpserver_extensions": {"jupyter_agnes": True, "jupyterlab": True}},
        "AgnesExtensionApp": {"data_dir": str(agnes_data_dir)},
    }
    for section, values in agnes_extra_config.items():
        config.setdefault(section, {}).update(values)
    return config


@pytest.fixture
def jp_auth_header() -> dict[str, str]:
    # pytest-jupyter would send the server's own token; we test Agnes credentials.
    return {}


@dataclass
class Agnes:
    """Direct access to the running extension's services (store, credentials), for setup."""

    services: AgnesServices

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def auth(self) -> AuthService:
        return self.services.auth

    def user(self, email: str, *, admin: bool = False, groups: tuple[str, ...] = ()) -> int:
        from jupyter_agnes.store import directory

        with self.store.write() as s:
            user = directory.get_or_create_user(s, email)
            wanted = ((directory.ADMIN_GROUP,) if admin else ()) + groups
            for name in wanted:
                group = directory.get_or_create_group(s, name, "test")
                directory.add_member(s, user, group, "admin", "test")
            return user.id

    def grant(self, group: str, rtype: str, rid: str) -> None:
        from jupyter_agnes.store import directory

        with self.store.write() as s:
            directory.add_grant(s, directory.get_or_create_group(s, group, "test"), rtype, rid, "t")

    def pat(self, email: str, *, admin: bool = False, days: int | None = None) -> str:
        user_id = self.user(email, admin=admin)
        return self.auth.create_token(user_id, "test", days).token

    def session_cookie(self, email: str, *, admin: bool = False) -> str:
        user_id = self.user(email, admin=admin)
        value, _ = self.auth.start_session(user_id, "test")
        return value


@pytest.fixture
def agnes(jp_serverapp: Any) -> Iterator[Agnes]:
    from server_extension.services import SETTINGS_KEY

    yield Agnes(jp_serverapp.web_app.settings[SETTINGS_KEY])

