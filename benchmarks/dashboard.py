"""Voila sales dashboard: first render and filter-change latency, PostHog off vs on.

Starts one `jupyter agnes serve` per PostHog setting (LOCAL_DEV_MODE on loopback, so
no sign-in step), on the sample data (default ~1 M order items), and drives headless
Debian Chromium. Rounds alternate off/on so machine noise hits both alike.

  python benchmarks/dashboard.py [--rows 1000000] [--rounds 5]

First render: navigation start -> the revenue KPI visible (kernel start, notebook run,
widget view). Filter change: select a region -> the KPI text changed (a comm round trip,
one DuckDB query and the re-render). Targets: < 3 s, < 300 ms, PostHog overhead < 5 %.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, process  # also puts the repo root on sys.path

from tests.fakes.posthog_server import FakePostHog
from tests.support.server_process import free_port

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KPI = ".agnes-kpi-revenue .agnes-kpi-value"


def prepare_data(data_dir: Path, rows: int) -> None:
    from jupyter_agnes.connectors.sample_data import generate_sample_data
    from jupyter_agnes.orchestrator import SyncOrchestrator

    generate_sample_data(data_dir, rows=rows)
    orch = SyncOrchestrator(data_dir)
    orch.rebuild()
    orch.store.close()


@contextlib.contextmanager
def server(data_dir: Path, posthog: str | None) -> Iterator[str]:
    port = free_port()
    env = {"LOCAL_DEV_MODE": "1", "POSTHOG_API_KEY": "", "POSTHOG_HOST": ""}
    if posthog:
        env |= {"POSTHOG_API_KEY": "phc_benchmark", "POSTHOG_HOST": posthog}
    args = [sys.executable, "-m", "jupyter_agnes.cli", "serve", "--data-dir", str(data_dir)]
    args += ["--ip", "127.0.0.1", "--port", str(port)]
    args += [
        f"--ServerApp.root_dir={ROOT / 'notebooks'}",
        "--ServerApp.jpserver_extensions=voila=True",
    ]
    url = f"http://127.0.0.1:{port}/"
    with process(args, url + "agnes/api/health", env=env, log=data_dir.parent / f"srv-{port}.log"):
        yield url


def measure(browser, url: str) -> tuple[float, float]:
    page = browser.new_page()
    try:
        started = time.perf_counter()
        page.goto(url + "voila/render/dashboards/sales.ipynb", wait_until="commit")
        page.wait_for_selector(KPI, state="visible", timeout=60_000)
        first = time.perf_counter() - started
        before = page.inner_text(KPI)
        page.wait_for_selector(".agnes-filter-region select", state="visible")
        started = time.perf_counter()
        page.select_option(".agnes-filter-region select", "Europe")
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).innerText !== old",
            arg=[KPI, before],
            timeout=30_000,
        )
        change = time.perf_counter() - started
        return first, change
    finally:
        page.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    try:  # serve posthog-js like the real host, when the npm package is available
        fake = FakePostHog(serve_js=True)
    except RuntimeError:
        fake = FakePostHog()
    with tempfile.TemporaryDirectory() as tmp, fake:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        prepare_data(data_dir, args.rows)
        results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        with (
            server(data_dir, None) as off_url,
            server(data_dir, fake.url) as on_url,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                for url in (off_url, on_url):  # warm-up: imports, page cache
                    measure(browser, url)
                for _ in range(args.rounds):
                    results["off"].append(measure(browser, off_url))
                    results["on"].append(measure(browser, on_url))
            finally:
                browser.close()
    med = {
        k: (statistics.median(f for f, _ in v), statistics.median(c for _, c in v))
        for k, v in results.items()
    }
    print(f"rows={args.rows} rounds={args.rounds} (medians)")
    for key in ("off", "on"):
        first, change = med[key]
        print(
            f"  PostHog {key:3}: first render {first:6.2f} s   filter change {change * 1000:6.0f} ms"
        )
    overhead = (med["on"][0] / med["off"][0] - 1) * 100
    print(f"  PostHog overhead on first render: {overhead:+.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
