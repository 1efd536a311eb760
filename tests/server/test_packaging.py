"""The package as installed: the server extension is enabled, the kernelspec and CLI exist,
and the wheel carries the auto-enable config and the kernelspec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)


def test_server_extension_is_enabled_and_ok():
    out = run(str(BIN / "jupyter"), "server", "extension", "list")
    text = out.stdout + out.stderr
    assert "jupyter_agnes enabled" in text.replace("\x1b[32m", "").replace("\x1b[0m", "")
    assert "jupyter_agnes 0.1.0 OK" in text.replace("\x1b[32m", "").replace("\x1b[0m", "")


def test_agnes_kernelspec_is_installed():
    specs = json.loads(run(str(BIN / "jupyter"), "kernelspec", "list", "--json").stdout)
    spec = specs["kernelspecs"]["agnes"]["spec"]
    assert spec["display_name"] == "Agnes (Python 3)"
    assert "--ext=jupyter_agnes" in spec["argv"]
    assert "--IPKernelApp.reraise_ipython_extension_failures=True" in spec["argv"]
    resources = Path(specs["kernelspecs"]["agnes"]["resource_dir"])
    assert (resources / "logo-64x64.png").exists() and (resources / "logo-32x32.png").exists()


def test_jupyter_agnes_console_script():
    out = run(str(BIN / "jupyter"), "agnes", "--help")
    assert "bootstrap" in out.stdout and "login-link" in out.stdout and "serve" in out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", str(out), str(REPO))
    return next(out.glob("jupyter_agnes-*.whl"))


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = [n for n in names if ".data/data/" in n]
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/jupyter_agnes.json") for n in data)
    assert any(n.endswith("share/jupyter/kernels/agnes/kernel.json") for n in data)
    assert "jupyter_agnes/store/migrations/versions/0001_initial.py" in names
    assert "server_extension/app.py" in names
    assert not any("node_modules" in n or n.startswith("tests/") for n in names)


def test_an_installed_wheel_finds_its_shipped_notebooks(wheel, tmp_path):
    """Outside a source checkout, quickstart copies the notebooks the wheel put under
    <prefix>/share/jupyter/agnes/notebooks: every notebook in notebooks/, dashboards too."""
    site, share = tmp_path / "site", tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as whl:
        for name in whl.namelist():
            head, sep, rest = name.partition(".data/data/")
            target = share / rest if sep and "/" not in head else site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(name))
    probe = (
        "import jupyter_agnes.workspace as w; from pathlib import Path;"
        "d = w.shipped_notebooks_dir(); print(Path(w.__file__).parent); print(d);"
        "print(*w.shipped_notebooks(d), sep=chr(10))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site),
                           "JUPYTER_PATH": str(share / "share" / "jupyter")},
    ).stdout.splitlines()
    assert out[0] == str(site / "jupyter_agnes")  # the wheel's code, not the checkout's
    assert out[1] == str(share / "share" / "jupyter" / "agnes" / "notebooks")
    shipped = sorted(p.relative_to(REPO / "notebooks").as_posix()
                     for p in (REPO / "notebooks").rglob("*.ipynb")
                     if ".ipynb_checkpoints" not in p.parts)
    assert out[2:] == shipped and "dashboards/sales.ipynb" in shipped
