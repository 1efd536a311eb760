"""%%ask in a real `agnes` kernel against the fake LLM server (Anthropic wire protocol)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.llm_server import DEFAULT_TEXT, ERROR_BODY_MARKER, FakeLLMServer
from tests.support.magics_helpers import assert_magic_errors, kernel_on, sample_data
from tests.support.magics_kernel import AgnesKernel, kernel_env

API_KEY = "sk-ant-test-key-that-must-never-show-4b1d"
QUESTION_SQL = "SELECT count(*) AS n FROM orders WHERE status = 'completed'"


@pytest.fixture(scope="module")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_data(tmp_path_factory, "ask", 1000)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(sql=QUESTION_SQL) as server:
        server.chunk_size = 5
        yield server


@pytest.fixture(scope="module")
def kernel(sample_data_dir: Path, fake: FakeLLMServer) -> Iterator[AgnesKernel]:
    with kernel_on(
        sample_data_dir,
        AGNES_LLM_PROVIDER="anthropic",
        ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_BASE_URL=fake.url,
        AGNES_LLM_MAX_RETRIES="0",
        JPY_SESSION_NAME="notebooks/ask-test.ipynb",
    ) as k:
        yield k


@pytest.fixture(autouse=True)
def _reset(fake: FakeLLMServer) -> None:
    fake.reset()


def sent_text(fake: FakeLLMServer) -> str:
    return json.dumps(fake.requests[-1]["body"])


def test_text_to_sql_runs_end_to_end(
    kernel: AgnesKernel, fake: FakeLLMServer, sample_data_dir: Path
) -> None:
    run = kernel.ok("%%ask --format sql --run -o done\nHow many orders were completed?")
    body = fake.requests[-1]["body"]
    assert fake.requests[-1]["path"] == "/v1/messages"
    headers = fake.requests[-1]["headers"]
    assert API_KEY in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    schema = body["output_config"]["format"]["schema"]
    assert set(schema["required"]) == {"sql", "explanation"}
    text = sent_text(fake)
    # schemas only: table and column names, no row values
    assert "TABLE orders (order_id BIGINT" in text and "customer_id" in text
    assert "customer1@example.com" not in text and "sample row" not in text
    shown = "\n".join(run.markdown)
    assert QUESTION_SQL in shown and "Fake explanation" in shown
    assert "showing 1 of 1 rows" in run.html
    import duckdb

    con = duckdb.connect(str(sample_data_dir / "analytics.duckdb"), read_only=True)
    (expected,) = con.execute(QUESTION_SQL).fetchone()
    con.close()
    assert kernel.value("int(done.n[0])") == str(expected)
    assert kernel.value("_ask['sql']") == QUESTION_SQL
    assert API_KEY not in run.everything()


def test_sql_without_run_and_with_samples(kernel: AgnesKernel, fake: FakeLLMServer) -> None:
    run = kernel.ok("%%ask --format sql --with-samples -o answer\nCompleted orders?")
    assert "sample row" in sent_text(fake)
    assert "customer1@example.com" in sent_text(fake)
    assert QUESTION_SQL in "\n".join(run.markdown) and "showing" not in run.html
    assert kernel.value("sorted(answer)") == "['explanation', 'sql']"


def test_markdown_streams_and_fills_known_names(kernel: AgnesKernel, fake: FakeLLMServer) -> None:
    kernel.ok("topic = 'revenue by region'")
    run = kernel.ok("%%ask\nExplain {topic} and keep {not_defined} as is.")
    prompt = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert prompt == "Explain revenue by region and keep {not_defined} as is."
    assert fake.requests[-1]["body"]["stream"] is True
    updates = [m for m in run.messages if m["msg_type"] == "update_display_data"]
    assert updates and updates[-1]["content"]["data"]["text/markdown"] == DEFAULT_TEXT
    first = next(m for m in run.messages if m["msg_type"] == "display_data")
    assert (
        first["content"]["transient"]["display_id"]
        == updates[-1]["content"]["transient"]["display_id"]
    )
    assert kernel.value("_ask == " + repr(DEFAULT_TEXT)) == "True"


def test_code_inserts_a_cell_and_json_parses(kernel: AgnesKernel, fake: FakeLLMServer) -> None:
    fake.fail("answer", text="Here you go:\n```python\ntotal = 1 + 1\nprint(total)\n```\n")
    run = kernel.ok("%%ask --format code\nAdd one and one")
    payloads = [p for p in run.payload if p.get("source") == "set_next_input"]
    assert payloads and payloads[0]["text"] == "total = 1 + 1\nprint(total)"
    assert payloads[0]["replace"] is False
    fake.fail("answer", text='```json\n{"a": 1, "b": [true, null]}\n```')
    kernel.ok("%%ask --format json -o j\nGive me JSON")
    assert kernel.value("j") == "{'a': 1, 'b': [True, None]}"
    fake.fail("answer", text="not json at all {")
    ename, evalue = kernel.fails("%%ask --format json\nGive me JSON")
    assert ename == "AgnesMagicError" and "not valid JSON" in evalue


def test_generated_sql_that_is_not_a_read_is_not_run(
    kernel: AgnesKernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    target = tmp_path / "leak.csv"
    for sql in (
        f"COPY (SELECT * FROM customers) TO '{target}'",
        "CREATE TABLE x AS SELECT 1; SELECT 2",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM no_such_table",
    ):
        fake.fail("answer", text=json.dumps({"sql": sql, "explanation": "hostile"}))
        ename, evalue = kernel.fails("%%ask --format sql --run\nDo it")
        assert ename == "AgnesMagicError" and "not run" in evalue, (sql, evalue)
    assert not target.exists()


def test_llm_errors_are_one_line_and_never_echo_the_key(
    kernel: AgnesKernel, fake: FakeLLMServer
) -> None:
    for kind, expected in (("401", "rejected the API key"), ("500", "server error (HTTP 500)")):
        fake.fail(kind)
        run = kernel.run("%%ask\nhello")
        ename, evalue, traceback = run.error
        assert run.status == "error" and ename == "AgnesMagicError" and expected in evalue
        assert len(traceback) == 1
        assert API_KEY not in run.everything() and ERROR_BODY_MARKER not in run.everything()
    assert_magic_errors(
        kernel,
        {
            "%%ask --format yaml\nx": "invalid choice: 'yaml'",
            "%%ask --run\nx": "--run works with --format sql only",
            "%%ask\n   ": "the cell is empty",
            "%%ask -o 9x\nx": "not a valid Python variable name",
        },
    )


def test_no_api_key_fails_at_once_naming_the_variable(
    sample_data_dir: Path, fake: FakeLLMServer, tmp_path: Path
) -> None:
    env = kernel_env(tmp_path, AGNES_DATA_DIR=str(sample_data_dir), ANTHROPIC_BASE_URL=fake.url)
    with AgnesKernel(env, tmp_path) as k:
        ename, evalue = k.fails("%%ask --format sql --run\nHow many orders?")
        assert ename == "AgnesMagicError"
        assert "set ANTHROPIC_API_KEY (or AGNES_LLM_API_KEY)" in evalue
    assert fake.requests == []  # failed before any request


def test_traces_carry_the_kernel_session_notebook_and_cell(
    sample_data_dir: Path, fake: FakeLLMServer, tmp_path: Path
) -> None:
    from tests.fakes.posthog_server import FakePostHog

    with FakePostHog() as ph:
        env = kernel_env(
            tmp_path,
            AGNES_DATA_DIR=str(sample_data_dir),
            ANTHROPIC_API_KEY=API_KEY,
            ANTHROPIC_BASE_URL=fake.url,
            AGNES_LLM_MAX_RETRIES="0",
            JPY_SESSION_NAME="notebooks/traced.ipynb",
            POSTHOG_API_KEY="phc_test_project_key",
            POSTHOG_HOST=ph.url,
        )
        with AgnesKernel(env, tmp_path) as k:
            kernel_id = k.kernel_id
            k.ok("x = 1")
            run = k.ok("%%ask\nhello")
            count = run.reply["content"]["execution_count"]
            fake.fail("500")
            k.fails("%%ask --format sql\nhow many?")
            k.ok("from jupyter_agnes.observability import flush\nflush(5)")
            events = ph.wait_for_events(
                lambda evs: len([e for e in evs if e.get("event") == "$ai_generation"]) >= 2
            )
    generations = [e["properties"] for e in events if e.get("event") == "$ai_generation"]
    ok, failed = generations[0], generations[-1]
    for props in (ok, failed):
        assert props["$ai_session_id"] == kernel_id
        assert props["notebook_path"] == "notebooks/traced.ipynb"
    assert ok["execution_count"] == count and ok["$ai_stream"] is True
    assert failed["execution_count"] == count + 1
    assert failed["$ai_error"] == "ServiceError (500)"
    assert API_KEY not in json.dumps(events) and ERROR_BODY_MARKER not in json.dumps(events)
