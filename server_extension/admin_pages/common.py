"""What every admin page shares: the section links, the message regions, masked emails,
tables, action forms and the one script that sends those forms to the admin API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from server_extension.pages import _MASKED

# (key, path under agnes/admin, label); the audit page is pg-audit's, linked from here.
SECTIONS = (
    ("users", "agnes/admin/users", "Users"),
    ("groups", "agnes/admin/groups", "Groups"),
    ("grants", "agnes/admin/grants", "Grants"),
    ("tokens", "agnes/admin/tokens", "Tokens"),
    ("sync", "agnes/admin/sync", "Sources and sync"),
    ("audit", "agnes/admin/audit", "Audit log"),
)

# A refusal's API message goes to the alert (read out at once); a success to the status.
MESSAGES = (
    '<p id="agnes-admin-message" class="error" role="alert" tabindex="-1" hidden></p>'
    '<p id="agnes-admin-status" class="notice" role="status" hidden></p>'
)


def section_nav(base_url: str, current: str) -> str:
    links = "".join(
        f'<a href="{escape(base_url + path)}" id="agnes-admin-nav-{key}"'
        + (' aria-current="page"' if key == current else "")
        + f">{escape(label)}</a>"
        for key, path, label in SECTIONS
    )
    return f'<nav class="agnes-nav agnes-admin-nav" aria-label="Admin sections">{links}</nav>'


def masked(text: str, element_id: str = "") -> str:
    """An email (or other personal text), hidden from session replays. Attributes are not
    masked, so other elements name it by `element_id` (aria-labelledby, confirmations)."""
    ident = f' id="{escape(element_id)}"' if element_id else ""
    return f"<span{ident} {_MASKED}>{escape(text)}</span>"


def group_name(name: str, element_id: str = "") -> str:
    """A group's name; masked when it is an email (a Google group's address)."""
    if "@" in name:
        return masked(name, element_id)
    ident = f' id="{escape(element_id)}"' if element_id else ""
    return f"<span{ident}>{escape(name)}</span>"


def table(
    caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str
) -> str:
    """A table with a caption and column headers; the cells are trusted (escaped) HTML."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">None.</td></tr>'
    return (
        f'<table id="{escape(table_id)}"><caption class="muted">{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def action_form(
    url: str,
    method: str,
    button: str,
    *,
    fields: str = "",
    confirm: str | None = None,
    danger: bool = False,
    form_id: str = "",
    subject: str = "",
) -> str:
    """A form the page script sends as JSON to `url` (absolute), then reloads the page.
    `fields` are trusted inputs with `name`s; `confirm` asks before sending. `subject` is
    the id of the element naming what the action is on: screen readers hear the button as
    "Revoke <subject>", and `{subject}` in `confirm` becomes its text (read in the browser,
    so an email never sits in an attribute, which session replays do not mask)."""
    attrs = f' data-url="{escape(url)}" data-method="{escape(method)}"'
    if confirm:
        attrs += f' data-confirm="{escape(confirm)}"'
    if subject:
        attrs += f' data-subject="{escape(subject)}"'
    if form_id:
        attrs += f' id="{escape(form_id)}"'
    aria = ""
    if subject:
        button_id = f"{subject}-{button.lower().replace(' ', '-')}"
        aria = f' id="{escape(button_id)}" aria-labelledby="{escape(button_id)} {escape(subject)}"'
    cls = ' class="danger"' if danger else ""
    return (
        f'<form class="agnes-action"{attrs}>{fields}'
        f'<button type="submit"{cls}{aria}>{escape(button)}</button></form>'
    )


def text_input(name: str, label: str, input_id: str, *, kind: str = "text", extra: str = "") -> str:
    return (
        f'<label for="{escape(input_id)}">{escape(label)}</label>'
        f'<input type="{kind}" name="{escape(name)}" id="{escape(input_id)}"{extra}>'
    )


def short_time(iso: str | None) -> str:
    """An API timestamp as `YYYY-MM-DD HH:MM` (UTC), or an em dash."""
    if not iso:
        return "—"
    return escape(iso[:16].replace("T", " "))


# Sends `form.agnes-action` as JSON with the XSRF header; a refusal shows its API message.
SCRIPT = """
(() => {
  const token = document.querySelector('meta[name=agnes-xsrf]').content;
  const alertBox = document.getElementById('agnes-admin-message');
  const statusBox = document.getElementById('agnes-admin-status');
  const done = sessionStorage.getItem('agnes-admin-done');
  if (done) { sessionStorage.removeItem('agnes-admin-done');
    statusBox.textContent = done; statusBox.hidden = false; }
  function refuse(text) {
    statusBox.hidden = true; alertBox.textContent = text; alertBox.hidden = false;
    alertBox.focus();
  }
  async function send(form) {
    if (form.dataset.confirm) {
      const named = document.getElementById(form.dataset.subject || '');
      const text = form.dataset.confirm.replace('{subject}', named ? named.textContent : '');
      if (!window.confirm(text)) return;
    }
    const method = form.dataset.method, body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      body[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    }
    const init = {method, credentials: 'same-origin',
      headers: {'X-XSRFToken': token, 'Content-Type': 'application/json'}};
    if (method !== 'DELETE' && method !== 'GET') init.body = JSON.stringify(body);
    let resp;
    try { resp = await fetch(form.dataset.url, init); }
    catch (err) { refuse('The server could not be reached: ' + err); return; }
    if (resp.ok) {
      const button = form.querySelector('button');
      sessionStorage.setItem('agnes-admin-done', 'Done: ' + (button ? button.textContent : ''));
      window.location.reload(); return;
    }
    let text = resp.status + ' ' + resp.statusText;
    try { const answer = await resp.json(); if (answer.message) text = answer.message; }
    catch (err) { /* not JSON: keep the status line */ }
    refuse(text);
  }
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (form.matches('form.agnes-action')) { event.preventDefault(); send(form); }
  });
  for (const select of document.querySelectorAll('select[data-targets]')) {
    const input = document.getElementById(select.dataset.targets);
    const pick = () => {
      input.setAttribute('list', 'agnes-targets-' + select.value);
      if (select.value === 'lab') input.value = '*';
    };
    select.addEventListener('change', pick); pick();
  }
})();
"""
