"""`AgnesLinkAuthenticator`: sign in at the hub with a `jupyter agnes login-link` link.

Without Google, that is how people get in. The link is `<hub>/hub/agnes/auth/link?code=…`
(the hub's service writes the hub's `/hub/` URL to `server.json`, which `login-link`
reads). The code is redeemed in the Agnes store, once, exactly as on a single server;
the hub user is named by the Agnes user's email and is a hub admin when an Agnes admin.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from traitlets import Unicode, default

from jupyter_agnes.auth.credentials import redeem_login_code
from jupyter_agnes.store import directory
from jupyter_agnes.store.engine import Store

LINK_PATH = "agnes/auth/link"
CODE_FIELD = "agnes_login_code"
LINK_INVALID = (
    "This sign-in link is invalid, already used or expired. "
    "Ask an Agnes admin for a new one (jupyter agnes login-link EMAIL)."
)


def without_code(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "code"]
    return urlunsplit(parts._replace(query=urlencode(query)))


class LoginLinkHandler(BaseHandler):
    """GET `/hub/agnes/auth/link?code=…`: one use, then the hub's login cookie."""

    async def get(self) -> None:
        user = await self.login_user({CODE_FIELD: self.get_argument("code", "")})
        if user is None:
            self.set_status(403)
            self.set_header("Cache-Control", "no-store")
            page = await self.render_template(
                "error.html", status_code=403, status_message="Forbidden", message=LINK_INVALID
            )
            self.finish(page)
            return
        # Redirect so the code leaves the address bar and browser history (the hub copies
        # this request's query onto its default next URL).
        self.redirect(without_code(self.get_next_url(user)))


class AgnesLinkAuthenticator(Authenticator):
    """Admits the Agnes users who hold a fresh login link; the Agnes store is the allow list."""

    agnes_data_dir = Unicode(config=True, help="The Agnes data dir holding the store.")

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        return True  # whoever redeems a link is an active Agnes user

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    def get_custom_html(self, base_url: str) -> str:
        return (
            "<div class='container'><p>Sign in with a one-time link from your Agnes admin "
            "(<code>jupyter agnes login-link EMAIL</code>).</p></div>"
        )

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from jupyter_agnes.hub.home import agnes_hub_handlers

        return [
            *super().get_handlers(app),
            (f"/{LINK_PATH}", LoginLinkHandler),
            *agnes_hub_handlers(),
        ]

    async def authenticate(self, handler: Any, data: Any = None) -> dict[str, Any] | None:
        code = (data or {}).get(CODE_FIELD)
        if not isinstance(code, str) or not code:
            return None  # the hub's username/password form is not a way in
        return await asyncio.to_thread(self._redeem, code, handler.request.remote_ip)

    def _opened_store(self) -> Store:
        from jupyter_agnes.paths import resolve_data_dir
        from jupyter_agnes.store.engine import open_store

        with self._store_lock:
            if self._store is None:
                self._store = open_store(resolve_data_dir(self.agnes_data_dir or None))
            return self._store

    def _redeem(self, code: str, ip: str) -> dict[str, Any] | None:
        with self._opened_store().write() as s:
            user_id = redeem_login_code(s, code)
            user = s.get(directory.User, user_id) if user_id is not None else None
            ok = user is not None and user.active
            directory.audit(
                s,
                "login.link",
                user_id=user_id,
                params={"ip": ip, "via": "hub"},
                result="ok" if ok else "link_invalid",
            )
            if not ok:
                return None
            assert user is not None
            admin = directory.ADMIN_GROUP in directory.user_group_names(s, user.id)
            return {"name": user.email, "admin": admin}
