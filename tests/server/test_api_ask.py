"""`POST /agnes/api/ask` through a real jupyter-server, with the server's LLM settings
pointed at the fake LLM (the real Anthropic wire protocol) and, where it matters, at a
fake PostHog: answers stream, the SQL prompt holds only the caller's tables, the key
never leaves the server, and every refusal is clear JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from jupyter_agnes.llm.ask_prompts import SYSTEM
from jupyter_agnes.orchestrator import SyncOrchestrator
from jupyter_agnes.store.models import PersonalAccessToken, utcnow
from tests.fakes.llm_server import DEFAULT_TEXT, ERROR_BODY_MARKER, FakeLLMServer
from tests.fakes.posthog_server import FakePostHog
from tests.support.apihelpers import bearer, call, cookie_header
from tests.support.datahelpers import make_extract

KEY = "sk-ant-server-key-never-leaves-9c2e"
MODEL = "fake-model"
ANN = "ann@example.com"
SQL = "SELECT count(*) AS n FROM orders"


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql=SQL) as server:
        server.chunk_size = 5
        yield server


@pytest.fixture
def llm_extra() -> dict[str, Any]:
    """Parametrize to change the server's LLM settings."""
    return {}


@pytest.fixture
def posthog_config() -> dict[str, Any]:
    """Parametrize to turn the server's PostHog on (pointed at the fake `ph`)."""
    return {}


@pytest.fixture
def agnes_extra_config(
    request: pytest.FixtureRequest,
    fake: FakeLLMServer,
    llm_extra: dict[str, Any],
    posthog_config: dict[str, Any],
) -> dict[str, Any]:
    """The server's LLMSettings and PostHog, as an operator configures them."""
    llm = {"api_key": KEY, "base_url": fake.url, "model": MODEL, "max_retries": 0, **llm_extra}
    if posthog_config:
        posthog_config = {**posthog_config, "host": request.getfixturevalue("ph").url}
    return {"LLMSettings": llm, "ObservabilitySettings": posthog_config}


@pytest.fixture
def users(agnes: Any, agnes_data_dir: Any) -> dict[str, dict[str, str]]:
    """Tables `orders` and `secret`; Ann (lab, orders only), a viewer, and an admin."""
    make_extract(agnes_data_dir, "shop", {
        "orders": "SELECT range AS id, 'row' || range AS label FROM range(20)",
        "secret": "SELECT 'classified-value' AS s",
    })  # fmt: skip
    assert SyncOrchestrator(agnes_data_dir, store=agnes.store).rebuild().problems == []
    agnes.user(ANN, groups=("analysts",))
    agnes.grant("analysts", "table", "orders")
    agnes.grant("analysts", "lab", "*")
    agnes.user("vic@example.com", groups=("viewers",))
    agnes.grant("viewers", "table", "orders")
    return {
        "ann": bearer(agnes.pat(ANN)),
        "viewer": bearer(agnes.pat("vic@example.com")),
        "admin": bearer(agnes.pat("boss@example.com", admin=True)),
    }


async def ask(jp_fetch: Any, headers: dict[str, str], body: Any) -> Any:
    return await call(jp_fetch, "agnes", "api", "ask", method="POST", headers=headers, body=body)


def lines(resp: Any) -> list[dict[str, Any]]:
    assert resp.code == 200, resp.body
    assert resp.headers["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in resp.body.decode().splitlines()]


def error(resp: Any) -> tuple[int, str]:
    return resp.code, json.loads(resp.body)["message"]


def sent(fake: FakeLLMServer) -> dict[str, Any]:
    [request] = fake.requests
    return request


async def test_markdown_streams_piece_by_piece(jp_fetch, users, fake) -> None:
    resp = await ask(jp_fetch, users["ann"], {"prompt": "  Explain revenue  "})
    items = lines(resp)
    texts = [i["text"] for i in items[:-1]]
    assert len(texts) > 1 and "".join(texts) == DEFAULT_TEXT  # several pieces, in order
    assert items[-1] == {"done": True}
    assert "Content-Length" not in resp.headers  # flushed before the end: chunked
    request = sent(fake)
    assert request["path"] == "/v1/messages"
    headers = request["headers"]
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    body = request["body"]
    assert body["stream"] is True and body["model"] == MODEL
    assert body["system"] == SYSTEM["markdown"]
    assert body["messages"] == [{"role": "user", "content": "Explain revenue"}]
    assert KEY not in resp.body.decode()


@pytest.mark.parametrize("fmt", ["code", "json"])
async def test_code_and_json_answers_stream_the_models_text(jp_fetch, users, fake, fmt) -> None:
    answer = '```json\n{"a": 1}\n```' if fmt == "json" else "```python\nx = 1\n```"
    fake.fail("answer", text=answer)
    items = lines(await ask(jp_fetch, users["ann"], {"prompt": "go", "format": fmt.upper()}))
    assert "".join(i.get("text", "") for i in items) == answer and items[-1] == {"done": True}
    assert sent(fake)["body"]["system"] == SYSTEM[fmt]


async def test_sql_prompt_holds_only_granted_tables(jp_fetch, users, fake) -> None:
    resp = await ask(jp_fetch, users["ann"], {"prompt": "How many?", "format": "sql"})
    assert resp.code == 200 and resp.headers["Content-Type"] == "application/json"
    answer = json.loads(resp.body)
    assert answer["sql"] == SQL and answer["explanation"].startswith("Fake explanation")
    prompt = json.dumps(sent(fake)["body"])
    assert "TABLE orders (id BIGINT, label VARCHAR)" in prompt and "How many?" in prompt
    assert "secret" not in prompt and "sample row" not in prompt
    fake.reset()
    body = {"prompt": "How many?", "format": "sql", "with_samples": True}
    assert (await ask(jp_fetch, users["ann"], body)).code == 200
    prompt = json.dumps(sent(fake)["body"])
    assert "sample row" in prompt and "row1" in prompt
    assert "secret" not in prompt and "classified-value" not in prompt
    fake.reset()  # the same request from an admin does see the other table: the test can fail
    assert (await ask(jp_fetch, users["admin"], body)).code == 200
    assert "classified-value" in json.dumps(sent(fake)["body"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("{not json", 400, "Request body must be valid JSON"),
        ([1, 2], 400, "Request body must be a JSON object"),
        ({}, 400, "prompt must be a string"),
        ({"prompt": 5}, 400, "prompt must be a string"),
        ({"prompt": "   \n"}, 400, "prompt is empty"),
        ({"prompt": "x", "format": "yaml"}, 400, "format must be one of markdown, code, json, sql"),
        ({"prompt": "x", "format": 3}, 400, "format must be one of"),
        ({"prompt": "x", "with_samples": "yes"}, 400, "with_samples must be true or false"),
        ({"prompt": "x", "model": 7}, 400, "model must be a non-empty string"),
        ({"prompt": "x", "max_tokens": "9"}, 400, "max_tokens must be a positive integer"),
        ({"prompt": "x", "max_tokens": 0}, 400, "max_tokens must be a positive integer"),
        ({"prompt": "x", "context": []}, 400, "context must be a JSON object"),
        ({"prompt": "x", "model": "claude-opus-9"}, 400, "'claude-opus-9' is not allowed"),
        ({"prompt": "é" * 50_001}, 413, "longer than 100000 bytes"),
        ({"prompt": "x" * 1_100_000}, 413, "Request body exceeds"),
    ],
)
async def test_bad_requests_are_refused_before_the_llm(
    jp_fetch, users, fake, body, status, message
) -> None:
    resp = await ask(jp_fetch, users["ann"], body)
    got_status, got = error(resp)
    assert got_status == status and message in got, got
    assert fake.requests == []


@pytest.mark.parametrize("llm_extra", [{"allowed_models": ["other-model"]}])
async def test_an_allowed_model_is_used(jp_fetch, users, fake) -> None:
    lines(await ask(jp_fetch, users["ann"], {"prompt": "hi", "model": "other-model"}))
    assert sent(fake)["body"]["model"] == "other-model"


async def test_who_may_ask(jp_fetch, users, agnes, fake) -> None:
    assert error(await ask(jp_fetch, {}, {"prompt": "hi"}))[0] == 401
    # A dashboard viewer has no cell to ask from: the server's key is not theirs to spend.
    assert error(await ask(jp_fetch, users["viewer"], {"prompt": "hi"}))[0] == 403
    forged = bearer("agnes_pat_" + "x" * 43)
    assert error(await ask(jp_fetch, forged, {"prompt": "hi"}))[0] == 401
    revoked = agnes.pat("rita@example.com", admin=True)
    listing = await call(jp_fetch, "agnes", "api", "tokens", headers=bearer(revoked))
    token_id = json.loads(listing.body)["tokens"][0]["id"]
    await call(jp_fetch, "agnes", "api", "tokens", token_id, method="DELETE", headers=bearer(revoked))
    assert error(await ask(jp_fetch, bearer(revoked), {"prompt": "hi"})) == (401, "Token revoked")
    expired = agnes.pat("ed@example.com", admin=True)
    with agnes.store.write() as s:
        s.execute(update(PersonalAccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert error(await ask(jp_fetch, bearer(expired), {"prompt": "hi"})) == (401, "Token expired")
    assert fake.requests == []


async def test_a_cookie_session_needs_xsrf(jp_fetch, users, agnes, fake) -> None:
    cookie = agnes.session_cookie(ANN)
    for headers in (cookie_header(cookie), {**cookie_header(cookie), "X-XSRFToken": "forged"}):
        assert (await ask(jp_fetch, headers, {"prompt": "hi"})).code == 403
    assert fake.requests == []
    lines(await ask(jp_fetch, cookie_header(cookie, "matching"), {"prompt": "hi"}))
    assert len(fake.requests) == 1


@pytest.mark.parametrize("llm_extra", [{"api_key": ""}])
async def test_no_llm_configured_is_503_naming_the_knob(jp_fetch, users) -> None:
    status, message = error(await ask(jp_fetch, users["ann"], {"prompt": "hi"}))
    assert status == 503
    assert message.startswith("This Agnes server has no LLM configured")
    assert "ANTHROPIC_API_KEY (or AGNES_LLM_API_KEY)" in message


async def test_provider_errors_are_502_with_a_safe_message(jp_fetch, users, fake) -> None:
    fake.fail("500")
    status, message = error(await ask(jp_fetch, users["ann"], {"prompt": "hi"}))
    assert status == 502 and message.startswith("anthropic: server error (HTTP 500)")
    fake.fail("401")
    status, message = error(await ask(jp_fetch, users["ann"], {"prompt": "q", "format": "sql"}))
    assert status == 502 and "rejected the API key" in message
    fake.fail("stream_error")  # after the answer began: an error line, then the end
    items = lines(await ask(jp_fetch, users["ann"], {"prompt": "hi"}))
    assert items[0]["text"] and items[-1]["status"] == 502 and "overloaded" in items[-1]["error"]
    for resp_text in (message, json.dumps(items)):
        assert ERROR_BODY_MARKER not in resp_text and KEY not in resp_text


@pytest.fixture
def ph() -> Iterator[FakePostHog]:
    with FakePostHog() as fake_ph:
        yield fake_ph


CONTEXT = {"magic": "%%ask", "session_id": "kernel-77", "notebook_path": "a.ipynb",
           "execution_count": 4, "secret_extra": "dropped"}  # fmt: skip


async def traced(jp_fetch, agnes, users, ph) -> dict[str, Any]:
    lines(await ask(jp_fetch, users["ann"], {"prompt": "PROMPT-BODY-71", "context": CONTEXT}))
    agnes.services.observability.flush()
    ph.wait_for_events(lambda evs: any(e["event"] == "$ai_generation" for e in evs))
    agnes.services.observability.shutdown()
    [event] = ph.named("$ai_generation")
    return event


@pytest.mark.parametrize("posthog_config", [{"api_key": "phc_server"}])
async def test_traced_to_the_servers_posthog_without_bodies(jp_fetch, agnes, users, ph) -> None:
    event = await traced(jp_fetch, agnes, users, ph)
    props = event["properties"]
    ann_id = str(agnes.user(ANN))
    assert event["distinct_id"] == ann_id == props["user_id"]
    assert props["$ai_session_id"] == "kernel-77" and props["notebook_path"] == "a.ipynb"
    assert props["execution_count"] == 4 and props["$ai_model"] == MODEL
    assert "$ai_input" not in props and "$ai_output_choices" not in props
    assert "PROMPT-BODY-71" not in ph.everything() and "dropped" not in ph.everything()
    assert KEY not in ph.everything()


@pytest.mark.parametrize("posthog_config", [{"api_key": "phc_server", "llm_payloads": True}])
async def test_prompt_bodies_only_with_llm_payloads(jp_fetch, agnes, users, ph) -> None:
    props = (await traced(jp_fetch, agnes, users, ph))["properties"]
    assert "PROMPT-BODY-71" in json.dumps(props["$ai_input"])
