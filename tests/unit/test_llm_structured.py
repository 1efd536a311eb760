"""extract_json: Anthropic strict structured output, and each openai_compat fallback step."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from jupyter_agnes.llm import (
    AuthError,
    FormatError,
    LLMSettings,
    RefusalError,
    RetryPolicy,
    TruncatedError,
    UnsupportedError,
    get_provider,
    strict_schema,
)
from tests.fakes.llm_server import FakeLLMServer
from tests.support.obs_helpers import LLM_ENV, clear_env

SQL_SCHEMA = {
    "type": "object",
    "properties": {
        "sql": {"type": "string"},
        "explanation": {"type": "string"},
        "tables": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
        "meta": {
            "type": "object",
            "properties": {"dialect": {"enum": ["duckdb"]}},
            "additionalProperties": True,
        },
    },
    "required": ["sql", "explanation"],
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_env(monkeypatch, (*LLM_ENV, "AGNES_LLM_STRUCTURED_MODE", "FAKE_LLM_SQL"))


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql="SELECT count(*) FROM orders") as server:
        yield server


def make(fake: FakeLLMServer, name: str, mode: str = "auto", retries: int = 2):
    url = fake.url if name == "anthropic" else fake.openai_url
    settings = LLMSettings(
        provider=name, api_key="k", base_url=url, timeout=5.0, structured_mode=mode
    )
    return get_provider(settings, retry=RetryPolicy(max_retries=retries, base=0.001))


def all_objects(schema: object) -> Iterator[dict]:
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield schema
        for value in schema.values():
            yield from all_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from all_objects(value)


def test_strict_schema_is_recursive_and_leaves_input_alone() -> None:
    before = json.dumps(SQL_SCHEMA, sort_keys=True)
    out = strict_schema(SQL_SCHEMA, require_all=True)
    assert json.dumps(SQL_SCHEMA, sort_keys=True) == before
    objects = list(all_objects(out))
    assert len(objects) == 3
    assert all(o["additionalProperties"] is False for o in objects)
    assert out["required"] == ["sql", "explanation", "tables", "meta"]
    defs = strict_schema(
        {"$defs": {"x": {"properties": {"a": {"type": "string"}}}}, "anyOf": [{"type": "object"}]}
    )
    assert defs["$defs"]["x"]["additionalProperties"] is False
    assert defs["anyOf"][0]["additionalProperties"] is False


def test_anthropic_structured_output_is_strict(fake: FakeLLMServer) -> None:
    got = make(fake, "anthropic").extract_json("orders?", SQL_SCHEMA, "text_to_sql")
    assert got["sql"] == "SELECT count(*) FROM orders" and got["explanation"]
    fmt = fake.requests[-1]["body"]["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert all(o["additionalProperties"] is False for o in all_objects(fmt["schema"]))


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("truncate", TruncatedError),
        ("refuse", RefusalError),
        ("bad_json", FormatError),
        ("401", AuthError),
    ],
)
def test_structured_failures_are_clear_and_not_retried(
    fake: FakeLLMServer, name: str, kind: str, error: type
) -> None:
    fake.fail(kind, times=3)
    with pytest.raises(error):
        make(fake, name, mode="strict").extract_json("q", SQL_SCHEMA, "s")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
def test_structured_retries_on_429(fake: FakeLLMServer, name: str) -> None:
    fake.fail("429", retry_after="0")
    assert make(fake, name).extract_json("q", SQL_SCHEMA, "s")["sql"].startswith("SELECT")
    assert len(fake.requests) == 2


def test_openai_strict_uses_json_schema(fake: FakeLLMServer) -> None:
    got = make(fake, "openai_compat", "strict").extract_json("q", SQL_SCHEMA, "text to sql!")
    assert got["sql"] == "SELECT count(*) FROM orders"
    fmt = fake.requests[-1]["body"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "text_to_sql_"  # sanitised for OpenAI's rules
    assert all(o["additionalProperties"] is False for o in all_objects(fmt["json_schema"]))


def test_openai_strict_does_not_fall_back(fake: FakeLLMServer) -> None:
    fake.reject_formats = {"json_schema"}
    with pytest.raises(UnsupportedError, match="json_schema"):
        make(fake, "openai_compat", "strict").extract_json("q", SQL_SCHEMA, "s")
    assert len(fake.requests) == 1


def test_openai_json_falls_back_to_json_object(fake: FakeLLMServer) -> None:
    fake.reject_formats = {"json_schema"}
    provider = make(fake, "openai_compat", "json")
    assert provider.extract_json("q", SQL_SCHEMA, "s")["sql"] == "SELECT count(*) FROM orders"
    formats = [r["body"].get("response_format", {}).get("type") for r in fake.requests]
    assert formats == ["json_schema", "json_object"]
    system = fake.requests[-1]["body"]["messages"][0]
    assert system["role"] == "system" and "JSON" in system["content"]
    # The provider remembers: the next call goes straight to json_object.
    provider.extract_json("again", SQL_SCHEMA, "s")
    assert fake.requests[-1]["body"]["response_format"]["type"] == "json_object"
    assert len(fake.requests) == 3


def test_openai_json_stops_after_json_object(fake: FakeLLMServer) -> None:
    fake.reject_formats = {"json_schema", "json_object"}
    with pytest.raises(UnsupportedError, match="json_object"):
        make(fake, "openai_compat", "json").extract_json("q", SQL_SCHEMA, "s")
    assert len(fake.requests) == 2


def test_openai_auto_falls_back_to_fenced_json_in_text(fake: FakeLLMServer) -> None:
    fake.reject_formats = {"json_schema", "json_object"}
    got = make(fake, "openai_compat", "auto").extract_json("q", SQL_SCHEMA, "s")
    assert got["sql"] == "SELECT count(*) FROM orders"
    last = fake.requests[-1]["body"]
    assert "response_format" not in last and len(fake.requests) == 3
    assert "```json" in last["messages"][0]["content"]


def test_openai_auto_text_without_json_is_format_error(fake: FakeLLMServer) -> None:
    fake.reject_formats = {"json_schema", "json_object"}
    fake.fail("400")  # json_schema step
    fake.fail("400")  # json_object step
    fake.fail("bad_json")  # plain text step: prose, no JSON anywhere
    with pytest.raises(FormatError, match="not a JSON object"):
        make(fake, "openai_compat", "auto").extract_json("q", SQL_SCHEMA, "s")


def test_missing_required_keys_is_format_error(fake: FakeLLMServer) -> None:
    schema = {
        "type": "object",
        "properties": {"sql": {"type": "string"}},
        "required": ["sql", "explanation"],
    }
    with pytest.raises(FormatError, match="explanation"):
        make(fake, "anthropic").extract_json("q", schema, "s")


# --- hostile or odd model output --------------------------------------------------------

HOSTILE = [
    ("[" * 100_000 + "]" * 100_000, "not a JSON object"),  # nesting bomb
    ('["sql", "explanation"]', "not a JSON object"),  # JSON, but not an object
    ('{"sql": "SELECT 1"}', "required keys"),  # an object missing a required key
    ("null", "not a JSON object"),
    ("x" * 2_000_000, "not a JSON object"),  # huge prose
]


@pytest.mark.parametrize("name", ["anthropic", "openai_compat"])
@pytest.mark.parametrize(("text", "match"), HOSTILE)
def test_hostile_structured_answers_are_format_errors(
    fake: FakeLLMServer, name: str, text: str, match: str
) -> None:
    fake.fail("answer", text=text)
    with pytest.raises(FormatError, match=match):
        make(fake, name, mode="auto").extract_json("q", SQL_SCHEMA, "s")
    assert len(fake.requests) == 1


def test_prose_around_json_needs_auto_mode(fake: FakeLLMServer) -> None:
    answer = 'Sure:\n```json\n{"sql": "SELECT 2", "explanation": "two"}\n```\nEnjoy!'
    fake.fail("answer", text=answer)
    with pytest.raises(FormatError):
        make(fake, "openai_compat", mode="json").extract_json("q", SQL_SCHEMA, "s")
    fake.fail("answer", text=answer)
    got = make(fake, "openai_compat", mode="auto").extract_json("q", SQL_SCHEMA, "s")
    assert got == {"sql": "SELECT 2", "explanation": "two"}


def test_fake_fault_endpoint_rejects_garbage(fake: FakeLLMServer) -> None:
    import httpx

    url = f"{fake.url}/_fake/faults"
    assert httpx.post(url, json={"faults": [{"nope": 1}]}).status_code == 400
    assert httpx.post(url, content=b"{not json").status_code == 400
    assert httpx.post(url, json={"faults": [{"kind": "429"}]}).status_code == 200
    assert fake.faults[0]["kind"] == "429"
