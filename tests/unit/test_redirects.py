"""Same-origin redirect targets: whatever a browser could read as another origin goes to
the default (the login handler's use of this is tested in tests/server)."""

from __future__ import annotations

import pytest

from jupyter_agnes.auth.redirects import MAX_NEXT_LEN, safe_next


@pytest.mark.parametrize(
    "value",
    [
        "//evil.com",
        # browsers read any run of leading slashes as "//": a scheme-relative URL
        "///evil.com",
        "////evil.com/lab",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com/x",
        "javascript:alert(1)",
        "/ok\nLocation: x",
        "/a\tb",
        "/a b",
        "/a\x7fb",
        "evil.com",
        "",
        None,
        "/%0d%0aSet-Cookie:x" + "\x00",
        " /lab",
        "/" + "a" * MAX_NEXT_LEN,
    ],
)
def test_safe_next_refuses_other_origins(value):
    assert safe_next(value, "/default") == "/default"


@pytest.mark.parametrize(
    "value",
    [
        "/lab",
        "/a%40b/lab/tree/x.ipynb?x=1",
        "/voila/render/d.ipynb",
        "/lab?next=//evil.com",  # a query may hold anything: it is not where the browser goes
        "/!~",  # the printable ends of ASCII
        "/" + "a" * (MAX_NEXT_LEN - 1),
    ],
)
def test_safe_next_keeps_local_paths(value):
    assert safe_next(value, "/default") == value
