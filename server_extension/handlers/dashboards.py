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
from server_extension.pages import signed_in_as
from server_extension.request_helpers import principal_of, server_root_dir, shown_email

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dashboards · Agnes</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f5f6f8;margin:0;color:#1d2330}}
main{{max-width:48rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;border-radius:12px;
box-shadow:0 2px 12px #0002}} h1{{margin-top:0}} li{{margin:.4rem 0}}
.muted{{color:#5b6475;font-size:.9rem}} nav a{{margin-right:1rem}}
</style></head><body><main>
<h1>Dashboards</h1>
{signed_in}
{body}
<nav>{lab}<form method="post" action="{logout}" style="display:inline">{xsrf}
<button type="submit" id="agnes-sign-out">Sign out</button></form></nav>
</main></body></html>
"""


def render_index(
    base_url: str,
    principal: Principal,
    dashboards: list[Dashboard],
    xsrf_form_html: str,
    email: str | None,
) -> str:
    """The index; `email` is who is signed in, or None to name nobody (`shown_email`)."""
    if dashboards:
        items = "".join(
            f'<li><a class="agnes-dashboard-link" '
            f'href="{escape(base_url + "voila/render/" + quote(d.path))}">{escape(d.title)}</a>'
            f'{_id_note(d, principal)}</li>'
            for d in dashboards
        )
        body = f'<ul id="agnes-dashboards">{items}</ul>'
    elif rbac.has_lab_access(principal):
        body = (
            '<p id="agnes-dashboards-empty">There are no dashboards yet: notebooks in the '
            f"<code>{rbac.DASHBOARDS_FOLDER}/</code> folder appear here.</p>"
        )
    else:
        body = '<p id="agnes-dashboards-empty">No dashboards have been shared with you yet.</p>'
    lab = ""
    if rbac.has_lab_access(principal):
        lab = f'<a href="{escape(base_url + "lab")}">Open JupyterLab</a>'
    return _PAGE.format(
        signed_in=signed_in_as(email, "muted"),
        body=body,
        lab=lab,
        logout=escape(base_url + "agnes/logout"),
        xsrf=xsrf_form_html,
    )


def _id_note(dashboard: Dashboard, principal: Principal) -> str:
    """Admins see the id to grant (`jupyter agnes grant GROUP dashboard ID`)."""
    if not principal.is_admin or dashboard.id is None:
        return ""
    return f' <span class="muted agnes-dashboard-id">{escape(dashboard.id)}</span>'


class DashboardsIndexHandler(JupyterHandler):
    @property
    def principal(self) -> Principal:
        principal = principal_of(self)
        if principal is None:
            raise web.HTTPError(403, "Unknown user")
        return principal

    @web.authenticated
    def get(self) -> None:
        principal = self.principal
        dashboards = visible_dashboards(server_root_dir(self), principal)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        html = render_index(
            self.base_url,
            principal,
            dashboards,
            self.xsrf_form_html(),
            shown_email(self, principal),
        )
        self.finish(html)


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
