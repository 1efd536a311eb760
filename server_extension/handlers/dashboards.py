"""`/agnes/dashboards`: the dashboards the caller may open, linked to Voila."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from jupyter_agnes.auth import rbac
from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.dashboards.index import Dashboard, visible_dashboards
from server_extension.handlers.page_base import AgnesPageHandler
from server_extension.request_helpers import server_root_dir


def render_index_body(base_url: str, principal: Principal, dashboards: list[Dashboard]) -> str:
    """The index's content, inside the shared page frame (`page_shell`)."""
    if dashboards:
        items = "".join(
            f'<li><a class="agnes-dashboard-link" '
            f'href="{escape(base_url + "voila/render/" + quote(d.path))}">{escape(d.title)}</a>'
            f"{_id_note(d, principal)}</li>"
            for d in dashboards
        )
        return f'<ul id="agnes-dashboards">{items}</ul>'
    if rbac.has_lab_access(principal):
        return (
            '<p id="agnes-dashboards-empty">There are no dashboards yet: notebooks in the '
            f"<code>{rbac.DASHBOARDS_FOLDER}/</code> folder appear here.</p>"
        )
    return '<p id="agnes-dashboards-empty">No dashboards have been shared with you yet.</p>'


def _id_note(dashboard: Dashboard, principal: Principal) -> str:
    """Admins see the id to grant (`jupyter agnes grant GROUP dashboard ID`)."""
    if not principal.is_admin or dashboard.id is None:
        return ""
    return f' <span class="muted agnes-dashboard-id">{escape(dashboard.id)}</span>'


class DashboardsIndexHandler(AgnesPageHandler):
    @web.authenticated
    def get(self) -> None:
        principal = self.principal
        dashboards = visible_dashboards(server_root_dir(self), principal)
        body = render_index_body(self.base_url, principal, dashboards)
        self.finish_page(title="Dashboards", current="dashboards", body=body)


def _voila_file_rules(settings: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Voila's own file allow/deny lists, read the way its server extension reads them."""
    rules = settings.get("agnes_voila_file_rules")
    if rules is None:
        from voila.configuration import VoilaConfiguration
        from voila.server_extension import load_config_file

        conf = VoilaConfiguration(parent=settings.get("serverapp"))
        local = load_config_file()
        if local is not None:
            conf.update_config(local)
        rules = (list(conf.file_allowlist), list(conf.file_denylist))
        settings["agnes_voila_file_rules"] = rules
    return rules


def _guarded_voila_files_handler() -> type | None:
    """Voila's `/voila/files/` handler is a bare StaticFileHandler: it never authenticates.
    This subclass goes through the identity provider (and so the Voila rules in
    voila_access) first; registered by the agnes extension, it shadows Voila's route
    because extensions load alphabetically and the first matching route wins."""
    try:
        from voila.static_file_handler import AllowListFileHandler
    except ImportError:  # Voila not installed: nothing to guard
        return None

    class GuardedVoilaFilesHandler(JupyterHandler, AllowListFileHandler):
        def initialize(self) -> None:  # type: ignore[override]
            allow, deny = _voila_file_rules(self.settings)
            root = str(server_root_dir(self))
            AllowListFileHandler.initialize(self, allowlist=allow, denylist=deny, path=root)

        @property
        def content_security_policy(self) -> str:
            # An SVG or HTML file must not script against the server's origin.
            return super().content_security_policy + "; sandbox allow-scripts"

        @web.authenticated
        def head(self, path: str) -> Any:
            return AllowListFileHandler.head(self, path)

        @web.authenticated
        def get(self, path: str, include_body: bool = True) -> Any:
            return AllowListFileHandler.get(self, path, include_body)

    return GuardedVoilaFilesHandler


def dashboard_handlers() -> list[tuple[Any, ...]]:
    routes: list[tuple[Any, ...]] = [(r"/agnes/dashboards/?", DashboardsIndexHandler)]
    files = _guarded_voila_files_handler()
    if files is not None:
        routes.append((r"/voila/files/(.*)", files))
    return routes
