"""The email → Unix user rule of per-user hub servers."""

from __future__ import annotations

import re

import pytest

from jupyter_agnes.hub.unix_names import MAX_UNIX_NAME, unix_username

# What Debian's useradd accepts without --badname, and what is safe in a shell or path.
SAFE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def test_readable_part_and_hash() -> None:
    name = unix_username("Ana.Lopez@Example.com")
    assert re.fullmatch(r"ag-analopez-[0-9a-f]{10}", name)
    assert name == unix_username("  ana.lopez@example.COM ")  # case and spaces do not matter


@pytest.mark.parametrize(
    "email",
    [
        "root@example.com",
        "../../etc/passwd@x",
        "a b;rm -rf /@example.com",
        "$(id)@example.com",
        "Ünïcødé@exämple.com",
        "x" * 300 + "@example.com",
        "@example.com",
        "no-at-sign",
        "a@b@c",
        "-rf@example.com",
        "\x00nul@example.com",
    ],
)
def test_hostile_emails_give_safe_bounded_names(email: str) -> None:
    name = unix_username(email)
    assert SAFE_NAME.match(name), name
    assert name.startswith("ag-") and len(name) <= MAX_UNIX_NAME
    assert name != "root"


def test_emails_that_look_alike_get_different_names() -> None:
    emails = [
        "ana@example.com",
        "ana@example.org",
        "a.na@example.com",
        "ana+x@example.com",
        "ana-@example.com",
        "x" * 40 + "1@example.com",
        "x" * 40 + "2@example.com",
    ]
    names = {unix_username(e) for e in emails}
    assert len(names) == len(emails)
    # The readable parts collide (sanitized and truncated), the names do not.
    assert unix_username("ana@example.com")[:-10] == unix_username("a.na@example.com")[:-10]


def test_many_emails_no_collision() -> None:
    names = {unix_username(f"user{i}@example.com") for i in range(20000)}
    assert len(names) == 20000


def test_empty_email_is_refused() -> None:
    with pytest.raises(ValueError):
        unix_username("  ")
