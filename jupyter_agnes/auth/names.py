"""What a group or display name may be: the one rule for the admin API, the CLI and
Google sync. Pure: no I/O.

A name is stored NFKC-normalised (fullwidth `ADMIN`, U+FF21…, and `ADMIN` are one
spelling). It may not hold characters that make two names look alike or reorder the text
around them: control and format characters (zero-width spaces and joiners, bidi overrides
and isolates, the BOM), line and paragraph separators, and the invisible fillers Unicode
ignores by default. No name may equal a system group's name once normalised and
case-folded (`admin`, `ADMIN`, its fullwidth form), so nothing can pose as `Admin`.
"""

from __future__ import annotations

import unicodedata

from jupyter_agnes.store.directory import SYSTEM_GROUPS, DirectoryError

# Control, format (zero-width, bidi, BOM), surrogate, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Default-ignorable code points outside those categories: they render as nothing.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u3164\uffa0")


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


_SYSTEM_FOLDED = {_fold(name): name for name in SYSTEM_GROUPS}


def refused_character(name: str) -> str | None:
    """The first character that may not be in a name, as `U+XXXX`, or None."""
    for ch in name:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _INVISIBLE:
            return f"U+{ord(ch):04X}"
        if "\ufe00" <= ch <= "\ufe0f" or "\U000e0000" <= ch <= "\U000e0fff":
            return f"U+{ord(ch):04X}"  # variation selectors and tags: invisible too
    return None


def clean_display_name(name: str) -> str:
    """A person's display name, NFKC-normalised and stripped; DirectoryError (400,
    `invalid_name`) if it holds a refused character. Empty is allowed (no name)."""
    value = unicodedata.normalize("NFKC", name).strip()
    if bad := refused_character(value):
        raise DirectoryError(
            f"name may not contain control, zero-width or bidi characters ({bad})",
            "invalid_name",
        )
    return value


def clean_group_name(name: str) -> str:
    """A new group name (create, rename, a synced Google group), NFKC-normalised and
    stripped; DirectoryError (400) for refused characters or a system group's name in
    another spelling (even one NFKC turns into it). The system group's exact name
    passes: the caller's "already exists" check answers that one (409)."""
    value = unicodedata.normalize("NFKC", name).strip()
    if bad := refused_character(value):
        raise DirectoryError(
            f"Group name may not contain control, zero-width or bidi characters ({bad})",
            "invalid_group_name",
        )
    system = _SYSTEM_FOLDED.get(_fold(value))
    if system is not None and name.strip() != system:  # fullwidth `Admin` normalises to it
        raise DirectoryError(
            f"Group name {value!r} is reserved: it reads as the system group {system!r}",
            "reserved_group_name",
        )
    return value


def lookup_group_name(name: str) -> str:
    """How a group name typed to find a group is spelled in the store (NFKC, stripped)."""
    return unicodedata.normalize("NFKC", name).strip()
