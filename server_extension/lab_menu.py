"""JupyterLab's main menu gets an "Agnes" menu (Dashboards, Tokens, My access) without a
labextension build: JupyterLab 4 builds main-menu entries from the `menus` setting of
`@jupyterlab/mainmenu-extension:plugin`, and jupyterlab_server applies "overrides"
(defaults an installation ships) to every settings answer.

The entries need this server's base_url, known only at start, so instead of a file in
`<sys-prefix>/share/jupyter/lab/settings/overrides.d/` the extension adds its menu to the
overrides jupyterlab_server loaded (one dict its settings handlers share), once every
extension's routes exist. An operator's own `menus` overrides are kept (ours is appended);
a user who edits the setting can hide it like any menu. Each entry runs Lab's `help:open`
with `newBrowserTab` (Lab's help iframe is sandboxed without same-origin: the pages' sign-in
cookie would not reach them there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from server_extension.page_shell import NAV

log = logging.getLogger("jupyter_agnes.lab_menu")

MAINMENU_PLUGIN = "@jupyterlab/mainmenu-extension:plugin"
AGNES_MENU_ID = "jp-mainmenu-agnes"
AGNES_MENU_RANK = 900  # Lab's Help menu is 1000: ours comes before it


def agnes_menu(base_url: str) -> dict[str, Any]:
    """The menu, as JupyterLab's `menus` setting describes one; links from page_shell.NAV."""
    items = [
        {
            "command": "help:open",
            "args": {"url": base_url + link.path, "text": link.label, "newBrowserTab": True},
            "rank": rank,
        }
        for rank, link in enumerate(NAV)
    ]
    return {"id": AGNES_MENU_ID, "label": "Agnes", "rank": AGNES_MENU_RANK, "items": items}


def add_agnes_menu(overrides: dict[str, Any], base_url: str) -> None:
    """Add the menu to jupyterlab_server's `overrides` (plugin id -> setting defaults)."""
    plugin = overrides.setdefault(MAINMENU_PLUGIN, {})
    menus = plugin.setdefault("menus", [])
    if isinstance(menus, list) and not any(
        isinstance(m, dict) and m.get("id") == AGNES_MENU_ID for m in menus
    ):
        menus.append(agnes_menu(base_url))


def _rules(router: Any) -> Iterator[Any]:
    for rule in getattr(router, "rules", ()):
        yield rule
        yield from _rules(rule.target)


def install_lab_menu(web_app: Any, base_url: str) -> bool:
    """Add the menu to the overrides of JupyterLab's settings routes; False without Lab."""
    try:
        from jupyterlab_server.settings_handler import SettingsHandler
    except ImportError:
        return False
    found: dict[int, dict[str, Any]] = {}
    for rule in _rules(web_app.default_router):
        target, kwargs = rule.target, getattr(rule, "target_kwargs", None) or {}
        if isinstance(target, type) and issubclass(target, SettingsHandler):
            overrides = kwargs.get("overrides")
            if isinstance(overrides, dict):
                found[id(overrides)] = overrides
    for overrides in found.values():
        add_agnes_menu(overrides, base_url)
    if not found:
        log.info("JupyterLab's settings routes not found: no Agnes menu in Lab")
    return bool(found)
