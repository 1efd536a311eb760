"""`make mutation` names the survivors docs/mutation/ does not explain: the citation forms the
area files use are all read, and nothing else counts as a citation."""

from __future__ import annotations

from tests.mutation.accepted import cited_names, short_name


def test_every_citation_form_is_read_and_plain_numbers_are_not():
    text = (
        "- `xǁCacheǁ_read__mutmut_5`-`_7` and `pat.x_make__mutmut_2`, `_4`, `_9-10`;"
        " `get_user__mutmut_21` (`30` seconds, `size_3`)"
    )
    assert cited_names(text) == {
        "_read__mutmut_5", "_read__mutmut_6", "_read__mutmut_7",
        "make__mutmut_2", "make__mutmut_4", "make__mutmut_9", "make__mutmut_10",
        "get_user__mutmut_21",
    }


def test_a_number_before_any_name_cites_nothing():
    assert cited_names("`_3` then `x_f__mutmut_4`") == {"f__mutmut_4"}


def test_a_survivor_is_matched_without_module_class_or_x_prefix():
    assert short_name("server_extension.identity.xǁProviderǁget_user__mutmut_20") == (
        "get_user__mutmut_20"
    )
    assert short_name("jupyter_agnes.auth.access_view.x__memberships__mutmut_6") == (
        "_memberships__mutmut_6"
    )
    assert short_name("jupyter_agnes.auth.pat.x_make__mutmut_2") in cited_names(
        "`x_make__mutmut_2`"
    )
