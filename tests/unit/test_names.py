"""What a group or display name may be (auth/names.py): no character that hides or
reorders text, and no spelling of a system group's name but its own."""

from __future__ import annotations

import pytest

from jupyter_agnes.auth.names import (
    clean_display_name,
    clean_group_name,
    lookup_group_name,
    refused_character,
)
from jupyter_agnes.store.directory import DirectoryError

# One of each refused kind, with the code point the caller is told.
REFUSED = [
    ("a\x00b", "U+0000"),  # Cc
    ("a\x1fb", "U+001F"),
    ("a\x7fb", "U+007F"),
    ("a\u200bb", "U+200B"),  # Cf: zero-width space
    ("a\u202eb", "U+202E"),  # bidi override
    ("a\u2066b", "U+2066"),  # bidi isolate
    ("a\ufeffb", "U+FEFF"),  # BOM
    ("a\u2028b", "U+2028"),  # Zl
    ("a\u2029b", "U+2029"),  # Zp
    ("a\ud800b", "U+D800"),  # Cs: a lone surrogate
    ("a\u034fb", "U+034F"),  # default-ignorable fillers
    ("a\u3164b", "U+3164"),
    ("a\uffa0b", "U+FFA0"),
    ("a\ufe00b", "U+FE00"),  # variation selectors, both ends
    ("a\ufe0fb", "U+FE0F"),
    ("a\U000e0000b", "U+E0000"),  # tags, both ends
    ("a\U000e0fffb", "U+E0FFF"),
    ("\u200ba\u202e", "U+200B"),  # the first one is named
]
# NFKC turns both Hangul fillers into U+1160: a cleaned name reports what it checked.
AFTER_NFKC = {"U+3164": "U+1160", "U+FFA0": "U+1160"}


@pytest.mark.parametrize(("name", "code"), REFUSED)
def test_refused_characters_are_named(name, code):
    assert refused_character(name) == code


@pytest.mark.parametrize(
    "name",
    ["Ann", "Zoë Ünal", "李雷", "a b-c_d.e", "a\ufdffb", "a\ufe10b", "a\U000dffffb", "a\U000e1000b"],
)
def test_ordinary_characters_pass(name):
    assert refused_character(name) is None


@pytest.mark.parametrize(("name", "code"), REFUSED)
def test_a_display_name_with_a_refused_character_is_invalid(name, code):
    with pytest.raises(DirectoryError) as exc:
        clean_display_name(name)
    assert exc.value.code == "invalid_name" and exc.value.status == 400
    assert f"({AFTER_NFKC.get(code, code)})" in str(exc.value)


def test_a_display_name_is_normalised_and_stripped():
    assert clean_display_name("  \uff21nn  ") == "Ann"  # fullwidth A
    assert clean_display_name("") == ""


@pytest.mark.parametrize(("name", "code"), REFUSED)
def test_a_group_name_with_a_refused_character_is_invalid(name, code):
    with pytest.raises(DirectoryError) as exc:
        clean_group_name(name)
    assert exc.value.code == "invalid_group_name" and exc.value.status == 400
    assert f"({AFTER_NFKC.get(code, code)})" in str(exc.value)


@pytest.mark.parametrize("name", ["admin", "ADMIN", " aDmIn ", "\uff21dmin", "everyone", "EVERYONE"])
def test_another_spelling_of_a_system_group_is_reserved(name):
    with pytest.raises(DirectoryError) as exc:
        clean_group_name(name)
    assert exc.value.code == "reserved_group_name" and exc.value.status == 400
    assert "reserved" in str(exc.value)


def test_a_system_groups_own_name_and_other_names_pass():
    from jupyter_agnes.store.directory import SYSTEM_GROUPS

    for name in SYSTEM_GROUPS:
        assert clean_group_name(name) == name
        assert clean_group_name(f" {name} ") == name
    assert clean_group_name("  \uff21nalysts ") == "Analysts"
    assert clean_group_name("Admins") == "Admins"


def test_a_looked_up_group_name_is_spelled_as_stored():
    assert lookup_group_name("  \uff21nalysts ") == "Analysts"
    assert lookup_group_name("Admin") == "Admin"
