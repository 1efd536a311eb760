"""The base of Agnes's HTML pages for signed-in people (dashboards, tokens, access):
who is asking, and the shared frame (`page_shell.render_page`) filled in for them."""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from jupyter_agnes.auth.principal import Principal
from server_extension.page_shell import render_page
from server_extension.request_helpers import principal_of, shown_email
from server_extension.services import AgnesServices, agnes_services


class AgnesPageHandler(JupyterHandler):
    """GET only; nobody signed in is sent to the login page (`@web.authenticated`)."""

    @property
    def agnes(self) -> AgnesServices:
        return agnes_services(self)

    @property
    def principal(self) -> Principal:
        principal = principal_of(self)
        if principal is None:
            raise web.HTTPError(403, "Unknown user")
        return principal

    def finish_page(self, *, title: str, current: str, body: str, script: str = "") -> None:
        """Send a whole page: `body` and `script` are trusted, every value in them escaped."""
        principal = self.principal
        html = render_page(
            title=title,
            body=body,
            base_url=self.base_url,
            current=current,
            email=shown_email(self, principal),
            is_admin=principal.is_admin,
            has_lab=principal.lab_access,
            xsrf_form_html=self.xsrf_form_html(),
            script=script,
        )
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)
