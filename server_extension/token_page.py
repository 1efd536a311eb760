"""`/agnes/tokens`: my personal access tokens, readable without JavaScript; creating and
revoking go through the REST API (`/agnes/api/tokens`) from a small script, with the
XSRF header, so the page does nothing a script could not do.

A new token's value is shown once, in an element session replay masks (`ph-mask`,
`data-sensitive`) and PostHog's autocapture skips (`ph-no-capture`); it is never logged.
"""

from __future__ import annotations

from html import escape
from typing import Any

from jupyter_agnes.auth.pat import PAT_PREFIX
from jupyter_agnes.auth.principal import SCOPES

PREFIX_LENGTH = len(PAT_PREFIX) + 4  # what `pat.py` stores as a token's `prefix`

SCOPE_HELP = {
    "data": "catalog, queries, dashboards, who am I",
    "lab": "JupyterLab's APIs: kernels, files, terminals",
    "admin": "the admin API and starting a sync",
}
MASKED = 'class="ph-mask ph-no-capture" data-sensitive'


def _when(value: str | None) -> str:
    """An ISO timestamp as the table shows it (minutes, UTC); "never" for None."""
    if not value:
        return "never"
    return escape(value[:16].replace("T", " ")) + " UTC"


def token_status(token: dict[str, Any], now_iso: str) -> str:
    if token.get("revoked_at"):
        return "revoked"
    return "expired" if token["expires_at"] <= now_iso else "active"


def token_row(token: dict[str, Any], now_iso: str) -> str:
    status = token_status(token, now_iso)
    action = (
        f'<button type="button" class="danger agnes-token-revoke" data-token-id='
        f'"{escape(token["id"])}" aria-label="Revoke token {escape(token["name"])}">'
        "Revoke</button>"
        if status == "active"
        else ""
    )
    cells = (
        f'<th scope="row" class="agnes-token-name">{escape(token["name"])}</th>',
        f"<td><code>{escape(token['prefix'])}…</code></td>",
        f"<td>{escape(', '.join(token['scopes']))}</td>",
        f"<td>{_when(token['created_at'])}</td>",
        f"<td>{_when(token['expires_at'])}</td>",
        f"<td>{_when(token['last_used_at'])}</td>",
        f'<td><span class="ph-mask" data-sensitive>{escape(token["last_used_ip"] or "")}'
        "</span></td>",
        f'<td class="agnes-token-status">{status}</td>',
        f"<td>{action}</td>",
    )
    return f'<tr data-token-id="{escape(token["id"])}">{"".join(cells)}</tr>'


HEADERS = ("Name", "Prefix", "Scopes", "Created", "Expires", "Last used", "Last IP", "Status")


def tokens_table(tokens: list[dict[str, Any]], now_iso: str) -> str:
    head = "".join(f'<th scope="col">{h}</th>' for h in HEADERS)
    head += '<th scope="col">Action</th>'
    rows = "".join(token_row(t, now_iso) for t in tokens)
    empty = "" if tokens else '<p id="agnes-tokens-empty">You have no tokens yet.</p>'
    return (
        '<table id="agnes-tokens"><caption class="muted">Your personal access tokens</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{empty}"
    )


def create_form(scopes_held: frozenset[str], default_days: int, max_days: int) -> str:
    boxes = "".join(
        f'<div><input type="checkbox" name="scopes" value="{s}" id="agnes-scope-{s}"'
        + (" checked" if s == "data" else "")
        + f'> <label for="agnes-scope-{s}" style="display:inline;font-weight:400">'
        f"<code>{s}</code>: {escape(SCOPE_HELP[s])}</label></div>"
        for s in SCOPES
        if s in scopes_held
    )
    return (
        '<h2 id="agnes-create-heading">Create a token</h2>'
        '<form id="agnes-token-form" aria-labelledby="agnes-create-heading">'
        '<label for="agnes-token-name">Name</label>'
        '<input id="agnes-token-name" name="name" required maxlength="100" autocomplete="off">'
        '<label for="agnes-token-days">Expires in (days)</label>'
        f'<input id="agnes-token-days" name="expires_in_days" type="number" min="1" '
        f'max="{max_days}" value="{default_days}" required>'
        f"<fieldset><legend>Scopes</legend>{boxes}</fieldset>"
        '<button type="submit" id="agnes-token-create">Create token</button></form>'
        "<noscript><p>Creating and revoking tokens here needs JavaScript; "
        "<code>POST /agnes/api/tokens</code> and <code>jupyter agnes token</code> work "
        "without it.</p></noscript>"
    )


NEW_TOKEN_BOX = (
    '<section id="agnes-new-token" hidden aria-labelledby="agnes-new-token-heading" '
    'class="notice">'
    '<h2 id="agnes-new-token-heading" tabindex="-1">Your new token</h2>'
    "<p>Copy it now: it is shown only once.</p>"
    f'<p><code id="agnes-new-token-value" {MASKED}></code> '
    '<button type="button" class="secondary" id="agnes-token-copy">Copy</button> '
    '<span id="agnes-token-copied" role="status"></span></p>'
    "<p>Try it:</p>"
    f'<pre id="agnes-token-curl" {MASKED}></pre></section>'
)

# Reads the page's own data-* attributes; every value shown goes through textContent.
SCRIPT = r"""
(() => {
  const root = document.getElementById("agnes-tokens-page");
  const base = root.dataset.baseUrl;
  const alertBox = document.getElementById("agnes-tokens-error");
  const xsrf = () => (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1] || "";
  const headers = () => ({"Content-Type": "application/json",
                          "X-XSRFToken": decodeURIComponent(xsrf())});
  const fail = async (resp) => {
    let message = resp.status + " " + resp.statusText;
    try { message = (await resp.json()).message || message; } catch (e) {}
    alertBox.textContent = message; alertBox.hidden = false;
  };
  const when = (iso) => iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "never";
  const cell = (tag, text) => { const c = document.createElement(tag);
                                 c.textContent = text; return c; };
  const addRow = (t) => {
    const tr = document.createElement("tr"); tr.dataset.tokenId = t.id;
    const name = cell("th", t.name); name.scope = "row"; name.className = "agnes-token-name";
    const prefix = document.createElement("td");
    prefix.appendChild(cell("code", t.token.slice(0, Number(root.dataset.prefixLength)) + "…"));
    const status = cell("td", "active"); status.className = "agnes-token-status";
    const created = cell("td", when(new Date().toISOString()));
    tr.append(name, prefix, cell("td", t.scopes.join(", ")), created,
              cell("td", when(t.expires_at)), cell("td", "never"), cell("td", ""), status);
    const act = document.createElement("td"); act.appendChild(revokeButton(t.id, t.name));
    tr.appendChild(act);
    document.querySelector("#agnes-tokens tbody").prepend(tr);
    const empty = document.getElementById("agnes-tokens-empty"); if (empty) empty.remove();
  };
  const revoke = async (button) => {
    const row = button.closest("tr");
    const name = row.querySelector(".agnes-token-name").textContent;
    const question = "Revoke the token \u201c" + name + "\u201d? Scripts using it stop working.";
    if (!window.confirm(question)) return;
    alertBox.hidden = true;
    const url = base + "agnes/api/tokens/" + encodeURIComponent(button.dataset.tokenId);
    const resp = await fetch(url, {method: "DELETE", headers: headers(),
                                   credentials: "same-origin"});
    if (resp.status !== 204) { await fail(resp); return; }
    row.querySelector(".agnes-token-status").textContent = "revoked";
    button.remove();
  };
  const revokeButton = (id, name) => {
    const b = document.createElement("button"); b.type = "button";
    b.className = "danger agnes-token-revoke"; b.dataset.tokenId = id; b.textContent = "Revoke";
    b.setAttribute("aria-label", "Revoke token " + name);
    b.addEventListener("click", () => revoke(b)); return b;
  };
  document.querySelectorAll(".agnes-token-revoke").forEach(
    (b) => b.addEventListener("click", () => revoke(b)));
  document.getElementById("agnes-token-form").addEventListener("submit", async (event) => {
    event.preventDefault(); alertBox.hidden = true;
    const form = event.target;
    const body = {name: document.getElementById("agnes-token-name").value,
                  expires_in_days: Number(document.getElementById("agnes-token-days").value),
                  scopes: [...form.querySelectorAll("input[name=scopes]:checked")]
                            .map((i) => i.value)};
    const resp = await fetch(base + "agnes/api/tokens", {method: "POST", headers: headers(),
                             credentials: "same-origin", body: JSON.stringify(body)});
    if (resp.status !== 201) { await fail(resp); return; }
    const created = await resp.json();
    document.getElementById("agnes-new-token-value").textContent = created.token;
    document.getElementById("agnes-token-curl").textContent =
      'curl -H "Authorization: Bearer ' + created.token + '" ' +
      new URL(base + "agnes/api/me", window.location.href).href;
    const box = document.getElementById("agnes-new-token"); box.hidden = false;
    document.getElementById("agnes-new-token-heading").focus();
    addRow(created); form.reset();
  });
  document.getElementById("agnes-token-copy").addEventListener("click", async () => {
    const value = document.getElementById("agnes-new-token-value").textContent;
    const said = document.getElementById("agnes-token-copied");
    try { await navigator.clipboard.writeText(value); said.textContent = "Copied."; }
    catch (e) { said.textContent = "Copy failed: select the token and copy it by hand."; }
  });
})();
"""


def tokens_body(
    base_url: str,
    tokens: list[dict[str, Any]],
    now_iso: str,
    scopes_held: frozenset[str],
    default_days: int,
    max_days: int,
) -> str:
    """The page's content; `now_iso` decides which tokens read as expired."""
    return (
        f'<div id="agnes-tokens-page" data-base-url="{escape(base_url)}" '
        f'data-prefix-length="{PREFIX_LENGTH}">'
        "<p>Personal access tokens let scripts and notebooks call the Agnes API as you "
        "(<code>Authorization: Bearer …</code>). A token can do at most what you can.</p>"
        '<p id="agnes-tokens-error" role="alert" class="error" hidden></p>'
        f"{NEW_TOKEN_BOX}"
        f"{tokens_table(tokens, now_iso)}"
        f"{create_form(scopes_held, default_days, max_days)}</div>"
    )
