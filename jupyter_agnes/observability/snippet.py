"""The browser snippet: posthog-js with notebook-safe replay masking.

Two parts, so a Content-Security-Policy can allow it by hash:
- a JSON block (`type="application/json"`, never executed) with every value: the
  key, host, options, super-properties and the user per the identify mode;
- a constant loader script (`LOADER_JS`, hash `LOADER_CSP_HASH`) that reads it,
  installs the posthog-js stub queue, loads `array.js` asynchronously from the
  configured host and reports `window.error` / `unhandledrejection`.

Every value goes through `json_for_html`, so `</script>` in a name can't break out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from jupyter_agnes.auth.principal import Principal
from jupyter_agnes.observability import people
from jupyter_agnes.observability.posthog_client import ObservabilitySettings

CONFIG_ELEMENT_ID = "agnes-posthog-config"

# Notebooks are full of data: mask code, editors, outputs, widgets and file names.
# Replaced by an empty box of the same size in replays: text masking is not enough where
# the text also lives in attributes (markdown headings' ids and anchor links), or where
# Lab echoes what was typed (the command palette's "No commands found that match …").
DEFAULT_BLOCK_SELECTORS = (
    ".jp-RenderedMarkdown",
    ".jp-MarkdownOutput",
    ".jp-TableOfContents",
    ".lm-CommandPalette",
)

DEFAULT_MASK_SELECTORS = (
    ".jp-InputArea",
    ".cm-content",
    ".cm-editor",
    ".CodeMirror",
    ".jp-OutputArea",
    ".jp-RenderedHTMLCommon",
    ".jp-RenderedText",
    ".jp-RenderedMarkdown",
    ".jupyter-widgets",
    ".widget-output",
    ".jp-LinkedOutputView",
    ".jp-DirListing-content",
    ".jp-BreadCrumbs",
    ".lm-TabBar-tabLabel",
    ".jp-MainAreaWidget .jp-Toolbar-item input",
    "code",
    "pre",
    "[data-sensitive]",
)

_JS_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    ord("\u2028"): "\\u2028",
    ord("\u2029"): "\\u2029",
}

# Query parameters of Agnes pages that can carry an email (audit filters, user search).
PERSONAL_URL_PARAMS = ("actor", "target", "q", "email")

LOADER_JS = """(function () {
  var el = document.getElementById("agnes-posthog-config");
  if (!el || window.__agnesPosthog) return;
  window.__agnesPosthog = true;
  var cfg;
  try { cfg = JSON.parse(el.textContent); } catch (e) { return; }
  var posthog = window.posthog = window.posthog || [];
  if (posthog.__SV) return;
  posthog.__SV = 1;
  posthog._i = [];
  posthog.people = posthog.people || [];
  posthog.init = function (token, options, name) {
    var methods = ["capture", "identify", "register", "register_once", "reset",
      "captureException", "setPersonProperties", "alias", "group", "opt_in_capturing",
      "opt_out_capturing", "startSessionRecording", "stopSessionRecording",
      "onFeatureFlags", "getFeatureFlag", "isFeatureEnabled", "reloadFeatureFlags"];
    methods.forEach(function (m) {
      posthog[m] = function () { posthog.push([m].concat(Array.prototype.slice.call(arguments))); };
    });
    posthog._i.push([token, options, name]);
  };
  var s = document.createElement("script");
  s.async = true;
  s.crossOrigin = "anonymous";
  s.src = cfg.assets_host + "/static/array.js";
  (document.head || document.documentElement).appendChild(s);
  posthog.init(cfg.token, cfg.options, "posthog");
  // Signed out: forget the previous user in this browser (before registering, as reset
  // also clears registered properties).
  if (!cfg.identify && cfg.reset) posthog.reset();
  posthog.register(cfg.register);
  if (cfg.identify) posthog.identify(cfg.identify.distinct_id, cfg.identify.properties);
  function report(err) {
    try {
      var ph = window.posthog;
      if (!ph || !ph.captureException || (ph.length && ph.length > 200)) return;
      ph.captureException(err instanceof Error ? err : new Error(String(err)));
    } catch (e) { /* never let analytics throw */ }
  }
  window.addEventListener("error", function (ev) { report(ev.error || ev.message); });
  window.addEventListener("unhandledrejection", function (ev) { report(ev.reason); });
})();"""

LOADER_CSP_HASH = "sha256-" + base64.b64encode(hashlib.sha256(LOADER_JS.encode()).digest()).decode()


def json_for_html(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>`, `&` or line separators."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_JS_ESCAPES)


def assets_host(api_host: str) -> str:
    # PostHog Cloud serves its static files from a separate assets host.
    return api_host.replace(".i.posthog.com", "-assets.i.posthog.com")


def mask_selector(settings: ObservabilitySettings) -> str:
    extra = [s.strip() for s in settings.replay_mask_selector.split(",") if s.strip()]
    return ", ".join((*DEFAULT_MASK_SELECTORS, *extra))


def snippet_config(settings: ObservabilitySettings, user: Principal | None) -> dict[str, Any]:
    mode = settings.identify_pii
    options: dict[str, Any] = {
        "api_host": settings.host,
        "person_profiles": "identified_only",
        "autocapture": False,
        "capture_pageview": "history_change",  # JupyterLab is a single-page app
        "capture_pageleave": True,
        "capture_exceptions": False,  # we report errors ourselves, below
        "disable_surveys": True,
        "disable_session_recording": not settings.replay,
        # Pinned off here, because a PostHog project can switch them on remotely, and each
        # would carry page text (notebook cells, query results) past the replay mask.
        "capture_dead_clicks": False,
        "rageclick": False,
        "enable_recording_console_log": False,
        "capture_heatmaps": False,
        # Agnes's own query parameters that can hold someone's email (the audit filters,
        # the admin user search) are masked in `$current_url` and `$referrer`.
        "mask_personal_data_properties": True,
        "custom_personal_data_properties": list(PERSONAL_URL_PARAMS),
    }
    if mode == "none":
        # No stable id in the browser either: a random one per browser session.
        options["persistence"] = "sessionStorage"
    if settings.replay:
        options["session_recording"] = {
            "maskAllInputs": True,
            "maskTextSelector": mask_selector(settings),
            "blockSelector": ", ".join(DEFAULT_BLOCK_SELECTORS),
            # Network bodies would include /api/contents (whole notebooks) and query results.
            "recordBody": False,
            "recordHeaders": False,
        }
    register = {**settings.super_properties(), **people.user_properties(user, mode)}
    identify = None
    if people.is_identified(user, mode):
        identify = {
            "distinct_id": people.distinct_id_for(user, mode),
            "properties": people.person_set(user, mode),
        }
    return {
        "token": settings.api_key.strip(),
        "assets_host": assets_host(settings.host),
        "options": options,
        "register": register,
        "identify": identify,
        "reset": user is None,
    }


def render_snippet(settings: ObservabilitySettings, user: Principal | None) -> str:
    config = json_for_html(snippet_config(settings, user))
    return (
        f'<script type="application/json" id="{CONFIG_ELEMENT_ID}">{config}</script>'
        f"<script>{LOADER_JS}</script>"
    )
