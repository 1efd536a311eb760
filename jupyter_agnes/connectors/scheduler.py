"""The source scheduler: every `poll_interval_s`, start a sync job for each scheduled
source that is due.

Due-ness lives in the store (`sources.next_run_at`), so it survives restarts and is
shared by every server on the store; `sources.claim_due` moves a due source's
`next_run_at` with one conditional UPDATE, so exactly one process runs each due run.
Blocking (store work): the server calls `run_due` on a thread of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from traitlets import Float, default
from traitlets.config import Configurable

from jupyter_agnes.connectors.sources import claim_due
from jupyter_agnes.envknobs import env_float
from jupyter_agnes.store.engine import Store

log = logging.getLogger("jupyter_agnes.connectors")

SCHEDULER_ACTOR = "scheduler"
DEFAULT_POLL_S = 15.0


class SourceScheduler(Configurable):
    poll_interval_s = Float(
        help="Seconds between looks for due sources (AGNES_SCHEDULER_POLL_S, default 15); "
        "0 or less turns this server's scheduler off.",
    ).tag(config=True)

    @default("poll_interval_s")
    def _poll_default(self) -> float:
        return env_float("AGNES_SCHEDULER_POLL_S", DEFAULT_POLL_S)

    def __init__(self, store: Store, start_job: Callable[[str, str], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.start_job = start_job  # SyncJobs.start(source, actor)

    @property
    def enabled(self) -> bool:
        return self.poll_interval_s > 0

    def run_due(self) -> list[str]:
        """Claim the due sources and start a job for each; the names started."""
        started: list[str] = []
        for name in claim_due(self.store):
            try:
                self.start_job(name, SCHEDULER_ACTOR)
                started.append(name)
            except Exception as exc:  # the store busy: this run is skipped, the next comes
                log.error("could not start the scheduled run of source %s: %s", name, exc)
        return started
