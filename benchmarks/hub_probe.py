"""Cell code for benchmarks/hub.py: sent as one cell to an Agnes kernel, never run directly.

Times, inside the kernel (no kernel messaging), where a cell's time goes:
- `%%sql SELECT 42` and a plain `42` through IPython's run_cell, interleaved (the overhead
  the magic adds to a cell);
- the magics' backend alone: `SELECT 42`, and 1 M rows fetched as Arrow then turned
  into pandas (fetch vs conversion);
- in a per-user kernel, the same against the service's own loopback address, which skips
  configurable-http-proxy (PROBE_DIRECT_URL; None elsewhere).
benchmarks/hub.py puts PROBE_CELLS, PROBE_ROUNDS and PROBE_DIRECT_URL before this text;
the last line printed is JSON.
"""

# ruff: noqa: F821 - PROBE_* are defined by the line benchmarks/hub.py puts first
# (no `from __future__` here: it could not follow that line)
import json
import os
import time
from typing import Any

from IPython import get_ipython
from IPython.utils.capture import capture_output

from jupyter_agnes.magics import get_context
from jupyter_agnes.magics.remote import RemoteBackend
from jupyter_agnes.magics.results import to_pandas


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _probe(cells: int, rounds: int, direct_url: str | None) -> dict[str, Any]:
    shell = get_ipython()
    found: dict[str, Any] = {"cell_sql": [], "cell_plain": []}
    with capture_output():
        for i in range(cells + 20):  # 20 warm-up pairs
            for code, key in (("%%sql\nSELECT 42", "cell_sql"), ("42", "cell_plain")):
                started = time.perf_counter()
                result = shell.run_cell(code, store_history=False)
                elapsed = _ms(started)
                if not result.success:
                    raise RuntimeError(f"{code!r} failed: {result.error_in_exec}")
                if i >= 20:
                    found[key].append(elapsed)
    backends = {"kernel": get_context(shell).backend()}
    if direct_url:
        token = os.environ["JUPYTERHUB_API_TOKEN"]
        backends["direct"] = RemoteBackend(direct_url, token, "JUPYTERHUB_API_TOKEN", 600, True)
    for name, backend in backends.items():
        small, fetch, pandas = [], [], []
        for _ in range(cells):
            started = time.perf_counter()
            backend.run_sql("SELECT 42", {})
            small.append(_ms(started))
        for _ in range(rounds):
            started = time.perf_counter()
            table = backend.run_sql("SELECT * FROM order_items", {}).table
            fetch.append(_ms(started))
            started = time.perf_counter()
            to_pandas(table)
            pandas.append(_ms(started))
        found[name] = {"select42": small, "fetch": fetch, "pandas": pandas}
    return found


print(json.dumps(_probe(PROBE_CELLS, PROBE_ROUNDS, PROBE_DIRECT_URL)))
