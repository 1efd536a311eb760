"""JupyterLab's "Agnes" menu: the main-menu setting's defaults, as jupyterlab_server
serves them to Lab, hold a menu whose entries open the Agnes pages under base_url."""

from __future__ import annotations

import json

from server_extension.lab_menu import AGNES_MENU_ID, MAINMENU_PLUGIN, add_agnes_menu
from tests.support.apihelpers import call, cookie_header


def menus_default(schema_setting: dict) -> list[dict]:
    return schema_setting["schema"]["properties"]["menus"]["default"]


async def test_lab_settings_carry_the_agnes_menu(jp_fetch, agnes, jp_base_url):
    agnes.user("dev@example.com", groups=("devs",))
    agnes.grant("devs", "lab", "*")
    headers = cookie_header(agnes.session_cookie("dev@example.com"))
    resp = await call(jp_fetch, "lab", "api", "settings", MAINMENU_PLUGIN, headers=headers)
    assert resp.code == 200
    menus = [m for m in menus_default(json.loads(resp.body)) if m["id"] == AGNES_MENU_ID]
    assert len(menus) == 1 and menus[0]["label"] == "Agnes"
    entries = [(i["command"], i["args"]["text"], i["args"]["url"]) for i in menus[0]["items"]]
    assert entries == [
        ("help:open", "Dashboards", f"{jp_base_url}agnes/dashboards"),
        ("help:open", "Tokens", f"{jp_base_url}agnes/tokens"),
        ("help:open", "My access", f"{jp_base_url}agnes/access"),
    ]
    assert all(i["args"]["newBrowserTab"] for i in menus[0]["items"])
    # the listing Lab loads at start carries it too
    listing = await call(jp_fetch, "lab", "api", "settings", headers=headers)
    plugin = [s for s in json.loads(listing.body)["settings"] if s["id"] == MAINMENU_PLUGIN]
    assert [m["id"] for m in menus_default(plugin[0])] == [AGNES_MENU_ID]


def test_an_operators_menus_are_kept_and_ours_added_once():
    overrides = {MAINMENU_PLUGIN: {"menus": [{"id": "jp-mainmenu-tabs", "disabled": True}]}}
    add_agnes_menu(overrides, "/")
    add_agnes_menu(overrides, "/")
    ids = [m["id"] for m in overrides[MAINMENU_PLUGIN]["menus"]]
    assert ids == ["jp-mainmenu-tabs", AGNES_MENU_ID]
