"""Shared fixtures: a real jupyter-server (pytest-jupyter) running the Agnes extension,
one fresh data dir, an environment without Agnes knobs, and kind markers from folders."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jupyter_agnes import envknobs
from tests.support import mutmut_order

if TYPE_CHECKING:
    from jupyter_agnes.auth.service import AuthService
    from jupyter_agnes.store.engine import Store
    from server_extension.services import AgnesServices

# mutmut runs only in-process unit tests, and registering pytest-jupyter's fixtures cost
# each of its ~6,600 pytest sessions 0.05 s.
pytest_plugins = [] if "mutmut" in sys.modules else ["pytest_jupyter.jupyter_server"]

TESTS_DIR = Path(__file__).resolve().parent
# Each test lives in the folder of what it needs; the folder is also its marker (pyproject).
KINDS = ("unit", "server", "kernel", "browser", "postgres", "hub")


def knobs_in_environ() -> list[str]:
    """The environment variables set now that jupyter_agnes reads (envknobs.is_known)."""
    return [name for name in os.environ if envknobs.is_known(name)]


# Module-scoped fixtures (kernels, `jupyter agnes serve`) start before any function fixture
# and inherit os.environ, so a developer's shell is scrubbed once here as well.
for _name in knobs_in_environ():
    del os.environ[_name]


@pytest.fixture(autouse=True)
def no_environment_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without any knob, whatever set one before it; tests set their own."""
    for name in knobs_in_environ():
        monkeypatch.delenv(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank: dict[str, int] = {}
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS_DIR):  # not notebooks/
            kind = path.relative_to(TESTS_DIR).parts[0]
            if kind in KINDS:
                item.add_marker(kind)
                rank[item.nodeid] = KINDS.index(kind)
    if mutmut_order.mutant_under_test():
        mutmut_order.order_items(items, rank)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    mutmut_order.note_report(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    mutmut_order.save_seconds()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh, empty data dir, 0700 like the ones Agnes creates."""
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    path.chmod(0o700)  # whatever the umask
    return path


@pytest.fixture
def store(data_dir: Path) -> Iterator[Store]:
    """A migrated SQLite system store in a fresh data dir, closed after the test."""
    from tests.support.migrations import open_migrated_store

    opened = open_migrated_store(data_dir)
    yield opened
    opened.close()


@pytest.fixture
def agnes_data_dir(data_dir: Path) -> Path:
    """The data dir the in-process jupyter-server (jp_serverapp) runs Agnes on."""
    return data_dir


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

    def pat(
        self,
        email: str,
        *,
        admin: bool = False,
        days: int | None = None,
        scopes: list[str] | None = None,
    ) -> str:
        """A PAT for `email`. With `scopes`, made by `create_token` (which refuses a scope
        beyond the owner's rights); without, one carrying every scope, as a token made
        before scopes existed does (the owner's rights still bound it at each request)."""
        from jupyter_agnes.auth.pat import create_pat
        from jupyter_agnes.auth.principal import SCOPES

        user_id = self.user(email, admin=admin)
        if scopes is not None:
            return self.auth.create_token(user_id, "test", days, scopes=scopes).token
        with self.store.write() as s:
            return create_pat(s, user_id, "test", days or self.auth.pat_default_days, SCOPES).token

    def session_cookie(self, email: str, *, admin: bool = False) -> str:
        user_id = self.user(email, admin=admin)
        value, _ = self.auth.start_session(user_id, "test")
        return value


@pytest.fixture
def agnes(jp_serverapp: Any) -> Iterator[Agnes]:
    from server_extension.services import SETTINGS_KEY

    yield Agnes(jp_serverapp.web_app.settings[SETTINGS_KEY])

