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


def test_seed_admin_gives_a_deactivated_admin_a_working_pat(data_dir) -> None:
    """`make run` re-run after its admin was deactivated must print a PAT that works."""
    from jupyter_agnes.auth.service import AuthService
    from jupyter_agnes.cli.serve import seed_admin
    from jupyter_agnes.store import directory
    from jupyter_agnes.store.engine import open_store
    from tests.support.datahelpers import make_extract

    make_extract(data_dir, "sample", {"orders": "SELECT 1 AS id"})  # no 1 M-row generation
    seed_admin(data_dir, "boss@example.com")
    store = open_store(data_dir)
    try:
        with store.write() as s:
            directory.set_user_active(s, directory.get_user_by_email(s, "boss@example.com"), False)
        pat, _ = seed_admin(data_dir, "boss@example.com")
        principal = AuthService(store).authenticate_header(f"Bearer {pat}", "127.0.0.1")
        assert principal.email == "boss@example.com" and principal.is_admin
    finally:
        store.close()
