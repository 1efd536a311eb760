"""Sources and sync jobs: recent jobs, "Run sync now", and the sources table once
`GET /agnes/api/admin/sources` exists (filled in by the page script; jobs only on 404)."""

from __future__ import annotations

from html import escape
from typing import Any

from server_extension.admin_pages.common import action_form, masked, short_time, table

SYNC_API = "agnes/api/sync"
SOURCES_API = "agnes/api/admin/sources"
SOURCE_COLUMNS = (
    "Source", "Type", "Schedule", "Last run", "Rows", "Next run", "Last error", "Action"
)


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
    headers = "".join(f'<th scope="col">{h}</th>' for h in SOURCE_COLUMNS)
    sources = (
        f'<section id="agnes-sources" hidden data-url="{escape(base_url + SOURCES_API)}">'
        '<h2>Sources</h2><table id="agnes-sources-table"><caption class="muted">Configured '
        f"sources (<code>jupyter agnes source add</code>)</caption><thead><tr>{headers}"
        "</tr></thead><tbody></tbody></table></section>"
    )
    return f"{run}{sources}<h2>Sync jobs</h2>{listing}"


# Builds the sources table from `GET /agnes/api/admin/sources` with textContent only (its
# values are never HTML); "Run now" is `POST …/sources/NAME/run`, sent by the page script.
SOURCES_SCRIPT = """
(async () => {
  const section = document.getElementById('agnes-sources');
  let resp;
  try { resp = await fetch(section.dataset.url, {credentials: 'same-origin'}); }
  catch (err) { return; }
  if (!resp.ok) return;  // no sources API (404): the jobs only
  const body = section.querySelector('tbody');
  const when = (iso) => iso ? iso.slice(0, 16).replace('T', ' ') : '—';
  for (const s of (await resp.json()).sources || []) {
    const row = document.createElement('tr');
    const last = s.last_run_at ? when(s.last_run_at) + ' (' + (s.last_status || '') + ')' : 'never';
    const cells = [s.name, s.type, s.schedule || 'by hand', last,
      s.last_rows == null ? '—' : String(s.last_rows), when(s.next_run_at), s.last_error || ''];
    cells.forEach((text, i) => {
      const cell = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) { cell.scope = 'row'; cell.id = 'agnes-source-' + s.name; }
      cell.textContent = text; row.appendChild(cell);
    });
    const form = document.createElement('form');
    form.className = 'agnes-action'; form.dataset.method = 'POST';
    form.dataset.url = section.dataset.url + '/' + encodeURIComponent(s.name) + '/run';
    const button = document.createElement('button');
    button.type = 'submit'; button.textContent = 'Run now';
    button.id = 'agnes-source-' + s.name + '-run';
    button.setAttribute('aria-labelledby', button.id + ' agnes-source-' + s.name);
    form.appendChild(button);
    const td = document.createElement('td'); td.appendChild(form); row.appendChild(td);
    body.appendChild(row);
  }
  section.hidden = false;
})();
"""
