"""Driving JupyterLab in Chromium: open a notebook, wait for its kernel, Run All, read the result.

Selectors are scoped to the notebook in the visible tab, so a page with several notebooks
open (Lab restores a workspace's tabs) reads only the one being run. Cells are read with
`textContent`: Lab renders cells out of view with `content-visibility`, and their
`innerText` is then empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.support.browser import shot

# The notebook panel of the tab in front (Lab keeps other tabs in the DOM, hidden).
ACTIVE_NOTEBOOK = "#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)"
# Lab renders a traceback with its stderr renderer (the bundle it builds for an error output
# has application/vnd.jupyter.error too, but no renderer claims that type), so this matches
# errors and anything written to stderr: both show as red boxes to the person running it.
ERROR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

PROMPTS_JS = (
    f"() => [...(document.querySelector(\"{ACTIVE_NOTEBOOK}\") ?? document)"
    ".querySelectorAll('.jp-InputPrompt')].map(p => p.textContent.trim())"
)


def wait_for_kernel_idle(page: Any, notebook: str) -> None:
    """Wait until the notebook's kernel is started and idle, as the server and Lab both see it.

    Lab's toolbar indicator reads 'idle' before any kernel exists, and "Run All" on a
    notebook whose kernel is still starting runs nothing, so neither is enough alone.
    """
    page.wait_for_function(
        """async (path) => {
            const r = await fetch('/api/sessions');
            if (!r.ok) return false;
            const s = (await r.json()).find(x => x.path.endsWith(path));
            return !!(s && s.kernel && s.kernel.execution_state === 'idle');
        }""",
        arg=notebook,
        polling=500,
        timeout=180_000,
    )
    page.wait_for_selector(".jp-StatusBar-Item:has-text('| Idle')", timeout=120_000)


def run_all_cells(page: Any) -> None:
    """Run > Run All Cells, once more if within 60 s no cell has started: the gesture is
    Lab's, not what a test checks, and a lost click must not fail it."""
    before = page.evaluate(PROMPTS_JS)
    for attempt in range(2):
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:
            page.wait_for_function(
                f"(before) => {{ const now = ({PROMPTS_JS})(); "
                "return now.some(p => p.includes('*')) || now.join() !== before.join(); }",
                arg=before,
                timeout=60_000,
            )
            return
        except Exception:
            if attempt:
                raise
            print("Run All Cells started nothing within 60 s; clicking it again")


def notebook_state(page: Any) -> str:
    """What the notebook in front shows: prompts, error (and stderr) outputs and any open
    dialog, for failure reports."""
    return page.evaluate(
        """([scope, errors]) => {
            const nb = document.querySelector(scope) ?? document;
            const texts = (sel) => [...nb.querySelectorAll(sel)].map(e => e.textContent.slice(0, 300));
            return JSON.stringify({
                prompts: [...nb.querySelectorAll('.jp-InputPrompt')].map(p => p.textContent.trim()),
                errors: texts(errors),
                dialog: document.querySelector('.jp-Dialog')?.innerText ?? null,
                status: [...document.querySelectorAll('.jp-StatusBar-Item')]
                    .map(e => e.innerText).join(' / '),
            });
        }""",
        [ACTIVE_NOTEBOOK, ERROR_OUTPUT],
    )


# Done: an error output (it stops the rest of Run All), or every code cell numbered.
_RUN_ALL_FINISHED_JS = """([scope, errors]) => {
    const nb = document.querySelector(scope);
    if (!nb) return false;
    if (nb.querySelector(errors)) return true;
    const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
}"""


def _failure(page: Any, what: str, name: str, log: Callable[[], str] | None) -> AssertionError:
    shot(page, f"{name}-failed")
    tail = f"\nserver log tail:\n{log()[-4000:]}" if log is not None else ""
    return AssertionError(f"{what}; page shows: {notebook_state(page)}{tail}")


def open_notebook(
    page: Any, lab_url: str, notebook: str, log: Callable[[], str] | None = None
) -> None:
    """Open `notebook` (a path under Lab's root) in the Lab at `lab_url` and wait until it
    is the tab in front and its kernel is idle. AssertionError with the page's state (and
    `log()`, the server log, if given) when that takes too long."""
    name = notebook.rsplit("/", 1)[-1]
    page.goto(lab_url + "lab/tree/" + notebook, wait_until="load")
    try:
        page.wait_for_selector(f"{ACTIVE_NOTEBOOK} .jp-Cell", timeout=120_000)
        page.wait_for_selector(f".lm-TabBar-tab.lm-mod-current:has-text('{name}')")
        wait_for_kernel_idle(page, notebook)
    except Exception as exc:
        raise _failure(page, f"{notebook} did not open with an idle kernel", name, log) from exc


def run_notebook(
    page: Any, lab_url: str, notebook: str, log: Callable[[], str] | None = None
) -> dict[str, Any]:
    """Open `notebook`, Run All, wait until every code cell ran or one wrote an error.
    Returns what the notebook shows (`notebook_state`: prompts, errors, ...)."""
    open_notebook(page, lab_url, notebook, log)
    try:
        run_all_cells(page)
        page.wait_for_function(
            _RUN_ALL_FINISHED_JS, arg=[ACTIVE_NOTEBOOK, ERROR_OUTPUT], timeout=240_000
        )
    except Exception as exc:
        name = notebook.rsplit("/", 1)[-1]
        raise _failure(page, f"Run All on {notebook} did not finish", name, log) from exc
    return json.loads(notebook_state(page))
