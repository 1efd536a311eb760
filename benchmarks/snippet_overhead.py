"""PostHog snippet overhead: the same pages with PostHog on and off, side by side in one run.

(a) GET /lab with a PAT: an Agnes server with PostHog on (POSTHOG_API_KEY=phc_…, POSTHOG_HOST
    at a fake PostHog in this process) vs an identical server with PostHog off. wrk (or the
    python fallback) with keep-alive; rounds alternate on/off so drift hits both alike.
(b) GET /voila/render/tiny.ipynb on the same two servers. Each render starts a kernel and
    runs the notebook (~seconds), so this times N sequential renders per side per round
    instead of wrk; the kernels are shut down between renders, outside the timing.
(c) The injector's memory vs page size: 1, 10 and 50 MB pages fed in chunks through
    PostHogSnippetTransform in this process, peak tracemalloc per size (should be ~constant),
    and the output checked byte-identical apart from the snippet.
Usage: .venv/bin/python benchmarks/snippet_overhead.py [--seconds 4] [--rounds 8]
       [--renders 5] [--voila-rounds 4] [--keep]      (about 2.5 minutes)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import requests
from common import load_tool, process, requests_per_second
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from jupyter_agnes.observability.posthog_client import ObservabilitySettings
from jupyter_agnes.observability.snippet import CONFIG_ELEMENT_ID
from server_extension.html_snippet import PostHogSnippetTransform
from tests.fakes.posthog_server import FakePostHog  # repo root on sys.path via common
from tests.support.server_process import bootstrap_pat, free_port

PY = sys.executable
API_KEY = "phc_benchmark0000000000000000000000000000000"
CONNECTIONS = 8
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": ["# Tiny dashboard"],
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["print(sum(range(10)))"],
        },
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def serve_args(data_dir: Path, port: int, root_dir: Path) -> list[str]:
    return [
        PY,
        "-m",
        "jupyter_agnes.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.log_level=WARN",
    ]


def shutdown_kernels(base: str, headers: dict[str, str]) -> None:
    kernels = requests.get(base + "api/kernels", headers=headers, timeout=10).json()
    for k in kernels:
        requests.delete(base + f"api/kernels/{k['id']}", headers=headers, timeout=30)


def timed_renders(base: str, headers: dict[str, str], n: int) -> list[float]:
    """Seconds per sequential render; each kernel is shut down after, outside the timing."""
    times = []
    with requests.Session() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            r = s.get(base + "voila/render/tiny.ipynb", headers=headers, timeout=120)
            times.append(time.perf_counter() - t0)
            if r.status_code != 200 or "45" not in r.text:
                raise RuntimeError(f"voila render: {r.status_code} {r.text[:200]!r}")
            shutdown_kernels(base, headers)
    return times


def sanity(name: str, url: str, headers: dict[str, str], want: bool) -> str:
    r = requests.get(url, headers=headers, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]!r}")
    has = CONFIG_ELEMENT_ID in r.text and "posthog" in r.text.lower()
    if has != want:
        raise RuntimeError(f"{name}: snippet present={has}, expected {want}")
    return f"{name}: 200, snippet {'present' if has else 'absent'} ({len(r.content)} bytes)"


# --- (c) the injector's memory vs page size -------------------------------------------------


def injector_peak(
    size_mb: int, chunk: bytes, has_head: bool, settings: ObservabilitySettings
) -> tuple[int, bool]:
    """Stream a `size_mb` page through the transform; return (peak bytes, output as expected).

    The page is never materialised: the same body chunk is sent repeatedly and the output
    is only hashed. With `has_head`, `</head>` is split across the first two chunks (as
    Voila does) and the snippet must land before it; without, every chunk goes through the
    hold-back path and the page must come out unchanged.
    """
    if has_head:
        head, head_rest = b"<!DOCTYPE html><html><head><title>big</title></he", b"ad><body>"
    else:
        head, head_rest = b"<!DOCTYPE html><html><body><h1>no head</h1>", b"<div>"
    end = b"</body></html>"
    body_bytes = size_mb * 1024 * 1024 - len(head) - len(head_rest) - len(end)
    n_full, rest = divmod(body_bytes, len(chunk))
    last = chunk[:rest]
    out_hash = hashlib.sha256()
    tracemalloc.start()
    tracemalloc.reset_peak()
    transform = PostHogSnippetTransform(
        HTTPServerRequest(
            start_line=RequestStartLine("GET", "/voila/render/x", "HTTP/1.1"),
            headers=HTTPHeaders({"Host": "127.0.0.1"}),
        ),
        settings,
        base_url="/",
    )
    _, headers, out = transform.transform_first_chunk(
        200, HTTPHeaders({"Content-Type": "text/html; charset=utf-8"}), head, False
    )
    out_hash.update(out)
    out_hash.update(transform.transform_chunk(head_rest, False))
    for _ in range(n_full):
        out_hash.update(transform.transform_chunk(chunk, False))
    out_hash.update(transform.transform_chunk(last, False))
    out_hash.update(transform.transform_chunk(end, True))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    injector = transform.injector
    if injector is None or injector.injected != has_head:
        return peak, False
    expected = hashlib.sha256()
    if has_head:  # the snippet goes right before the split "</he" + "ad>"
        expected.update(head[:-4] + injector.snippet + head[-4:] + head_rest)
    else:
        expected.update(head + head_rest)
    for _ in range(n_full):
        expected.update(chunk)
    expected.update(last + end)
    return peak, out_hash.digest() == expected.digest() and "Content-Length" not in headers


def bench_memory() -> list[str]:
    settings = ObservabilitySettings(api_key=API_KEY, host="http://127.0.0.1:9")
    unit = b"<p>row of dashboard output 0123456789</p>\n"
    lines = []
    injector_peak(1, unit * 100, True, settings)  # warm-up: first-call imports and caches
    for has_head, shape in ((True, "</head> early  "), (False, "no </head>     ")):
        for chunk_kb in (4, 64):
            chunk = (unit * (chunk_kb * 1024 // len(unit) + 1))[: chunk_kb * 1024]
            cells = []
            for size in (1, 10, 50):
                peak, ok = injector_peak(size, chunk, has_head, settings)
                cells.append(f"{size:2d} MB {peak / 1024:6.1f} KiB{'' if ok else ' WRONG OUTPUT'}")
            lines.append(f"  {shape} {chunk_kb:2d} KB chunks: " + " | ".join(cells))
    return lines


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--renders", type=int, default=5)
    ap.add_argument("--voila-rounds", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and server logs")
    args = ap.parse_args()
    started = time.monotonic()
    memory = bench_memory()  # first: cheap, and in-process only
    for var in [v for v in os.environ if v.startswith("POSTHOG_")]:
        del os.environ[var]  # the off server must see PostHog unconfigured
    tmp = Path(tempfile.mkdtemp(prefix="agnes-bench-snippet-"))
    root = tmp / "root"
    root.mkdir()
    (root / "tiny.ipynb").write_text(json.dumps(NOTEBOOK))
    pats = {side: bootstrap_pat(tmp / f"data-{side}", "bench@example.com") for side in ("on", "off")}
    ports = {"on": free_port(), "off": free_port()}
    bases = {side: f"http://127.0.0.1:{ports[side]}/" for side in ports}
    auth = {side: {"Authorization": f"Bearer {pats[side]}"} for side in pats}
    lab: dict[str, list[float]] = {"on": [], "off": []}
    voila: dict[str, list[float]] = {"on": [], "off": []}
    checks = []
    try:
        with FakePostHog() as fake:
            on_env = {"POSTHOG_API_KEY": API_KEY, "POSTHOG_HOST": fake.url}
            with (
                process(
                    serve_args(tmp / "data-on", ports["on"], root),
                    bases["on"] + "agnes/api/health",
                    env=on_env,
                    log=tmp / "server-on.log",
                ),
                process(
                    serve_args(tmp / "data-off", ports["off"], root),
                    bases["off"] + "agnes/api/health",
                    log=tmp / "server-off.log",
                ),
            ):
                for side in ("on", "off"):
                    want = side == "on"
                    checks.append(sanity(f"{side:3s} /lab", bases[side] + "lab", auth[side], want))
                    checks.append(
                        sanity(
                            f"{side:3s} /voila/render/tiny.ipynb",
                            bases[side] + "voila/render/tiny.ipynb",
                            auth[side],
                            want,
                        )
                    )
                    shutdown_kernels(bases[side], auth[side])
                for side in ("on", "off"):  # warm-up
                    requests_per_second(bases[side] + "lab", auth[side], seconds=2)
                for i in range(args.rounds):
                    order = ("on", "off") if i % 2 == 0 else ("off", "on")
                    for side in order:
                        lab[side].append(
                            requests_per_second(
                                bases[side] + "lab", auth[side], args.seconds, CONNECTIONS
                            )
                        )
                for i in range(args.voila_rounds):
                    order = ("on", "off") if i % 2 == 0 else ("off", "on")
                    for side in order:
                        voila[side] += timed_renders(bases[side], auth[side], args.renders)
            events = len(fake.events)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print("sanity:")
    for line in checks:
        print(f"  {line}")
    print(f"  fake PostHog received {events} server-side events during the run")
    med = {k: statistics.median(v) for k, v in lab.items()}
    print(
        f"(a) GET /lab: load tool {load_tool()}, {CONNECTIONS} connections, keep-alive, "
        f"{args.rounds} alternating rounds of {args.seconds:.0f}s per side"
    )
    for side in ("on", "off"):
        print(
            f"  PostHog {side:3s} median {med[side]:8.1f} req/s  rounds "
            f"{[round(v, 1) for v in lab[side]]}"
        )
    print(f"  on/off = {med['on'] / med['off']:.3f}   (target >= 0.95)")
    vmed = {k: statistics.median(v) for k, v in voila.items()}
    print(
        f"(b) GET /voila/render/tiny.ipynb: {args.voila_rounds} alternating rounds of "
        f"{args.renders} sequential renders per side (not wrk: each render starts a kernel; "
        "kernels shut down between renders, untimed)"
    )
    for side in ("on", "off"):
        print(
            f"  PostHog {side:3s} median {vmed[side]:.3f} s/render = {1 / vmed[side]:.2f} "
            f"renders/s   all {[round(v, 2) for v in voila[side]]}"
        )
    print(f"  on/off (renders/s) = {vmed['off'] / vmed['on']:.3f}")
    print(
        "(c) injector peak memory (tracemalloc) vs page size, streamed in chunks; "
        "output checked byte-identical to page + snippet (or page, without </head>):"
    )
    for line in memory:
        print(line)
    print(f"total run time {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
