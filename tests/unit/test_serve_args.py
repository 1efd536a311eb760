"""What `serve`/`quickstart` derive from their arguments: the URL kernels get as AGNES_URL,
and whether the operator chose Lab's root dir."""

from __future__ import annotations

import pytest

from jupyter_agnes.cli.serve import kernel_url, operator_root_dir


@pytest.mark.parametrize(
    ("ip", "extra", "url"),
    [
        ("127.0.0.1", [], "http://127.0.0.1:8888/"),
        ("0.0.0.0", [], "http://127.0.0.1:8888/"),
        ("::1", [], "http://[::1]:8888/"),
        ("10.0.0.5", ["--ServerApp.base_url=/team/agnes/"], "http://10.0.0.5:8888/team/agnes/"),
        ("127.0.0.1", ["--ServerApp.base_url=x"], "http://127.0.0.1:8888/x/"),
        ("127.0.0.1", ["--ServerApp.certfile=/c.pem"], "https://127.0.0.1:8888/"),
    ],
)
def test_kernel_url(ip, extra, url):
    assert kernel_url(ip, 8888, extra) == url


def test_operator_root_dir_in_any_spelling_last_one_wins():
    assert operator_root_dir(["--ServerApp.port=1"]) is None
    assert operator_root_dir(["--ServerApp.root_dir=/a"]) == "/a"
    assert operator_root_dir(["--notebook-dir=/b"]) == "/b"
    assert operator_root_dir(["--ServerApp.root_dir=/a", "--ServerApp.notebook_dir=/c"]) == "/c"
    assert operator_root_dir(["--ServerApp.preferred_dir=/p"]) is None
