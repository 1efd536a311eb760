"""Sources and sync jobs: recent jobs, "Run sync now", and the sources table once
`GET /agnes/api/admin/sources` exists (filled in by the page script; jobs only on 404)."""

from __future__ import annotations

from html import escape
from typing import Any

from server_extension.admin_pages.common import action_form, masked, short_time, table

SYNC_API = "agnes/api/sync"
SOURCES_API = "agnes/api/admin/sources"


def _job_row(job: dict[str, Any]) -> list[str]:
    progress = job.get("progress") or {}
    detail = escape(job["error"] or "")
    if job["status"] in ("queued", "running") and progress.get("total"):
        detail = escape(f"{progress['done']}/{progress['total']} {progress.get('label', '')}")
    return [
        f'<span class="agnes-job-status">{escape(job["status"])}</span>',
        escape(job["source"] or "all"),
        masked(job["requested_by"] or ""),
        short_time(job["created_at"]),
        short_time(job["finished_at"]),
        detail,
    ]


def sync_body(base_url: str, jobs: list[dict[str, Any]]) -> str:
    run = action_form(base_url + SYNC_API, "POST", "Run sync now", form_id="agnes-run-sync")
    listing = table(
        f"The {len(jobs)} most recent sync jobs, newest first",
        ("Status", "Source", "Asked by", "Started", "Finished", "Error or progress"),
        (_job_row(j) for j in jobs),
        "agnes-jobs",
    )
    # Filled by SOURCES_SCRIPT; hidden while the sources API is absent.
    sources = (
        f'<section id="agnes-sources" hidden data-url="{escape(base_url + SOURCES_API)}" '
        f'data-run-url="{escape(base_url + SYNC_API)}"><h2>Sources</h2>'
        '<table><caption class="muted">Configured sources</caption><thead><tr>'
        '<th scope="col">Source</th><th scope="col">Type</th><th scope="col">Last run</th>'
        '<th scope="col">Next run</th><th scope="col">Last error</th>'
        '<th scope="col">Action</th></tr></thead><tbody></tbody></table></section>'
    )
    return f"{run}{sources}<h2>Sync jobs</h2>{listing}"


# Builds the sources table with textContent only (the API's values are never HTML).
SOURCES_SCRIPT = """
(async () => {
  const section = document.getElementById('agnes-sources');
  let resp;
  try { resp = await fetch(section.dataset.url, {credentials: 'same-origin'}); }
  catch (err) { return; }
  if (!resp.ok) return;  // no sources API yet (404): jobs only
  const answer = await resp.json();
  const sources = Array.isArray(answer) ? answer : (answer.sources || []);
  const pick = (s, ...keys) => { for (const k of keys) if (s[k] != null) return String(s[k]);
    return '—'; };
  const body = section.querySelector('tbody');
  for (const s of sources) {
    const row = document.createElement('tr');
    const cells = [pick(s, 'name'), pick(s, 'type'),
      pick(s, 'last_run', 'last_run_at', 'last_finished_at'),
      pick(s, 'next_run', 'next_run_at'), pick(s, 'last_error', 'error')];
    for (const text of cells) { const td = document.createElement('td');
      td.textContent = text; row.appendChild(td); }
    const form = document.createElement('form');
    form.className = 'agnes-action'; form.dataset.method = 'POST';
    form.dataset.url = section.dataset.runUrl;
    const name = document.createElement('input');
    name.type = 'hidden'; name.name = 'source'; name.value = pick(s, 'name');
    const button = document.createElement('button');
    button.type = 'submit'; button.textContent = 'Run now';
    button.setAttribute('aria-label', 'Run ' + pick(s, 'name') + ' now');
    form.append(name, button);
    const td = document.createElement('td'); td.appendChild(form); row.appendChild(td);
    body.appendChild(row);
  }
  section.hidden = false;
})();
"""
