"""HTTP helpers for the tests that drive /agnes/api through a real jupyter-server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json


async def call(jp_fetch, *parts, method="GET", headers=None, body=None):
    """One request that never raises on an error status and never follows redirects."""
    kwargs = {"method": method, "headers": headers or {}, "raise_error": False}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
    elif method in ("POST", "PUT", "PATCH"):
        kwargs["body"] = b""
    return await jp_fetch(*parts, follow_redirects=False, **kwargs)


async def post_token(jp_fetch, headers, body):
    """POST /agnes/api/tokens: mint a PAT as whoever `headers` authenticate."""
    return await call(jp_fetch, "agnes", "api", "tokens", method="POST", headers=headers, body=body)


async def delete_token(jp_fetch, token_id, headers):
    return await call(
        jp_fetch, "agnes", "api", "tokens", token_id, method="DELETE", headers=headers
    )


def cookie_header(value: str, xsrf: str | None = None) -> dict[str, str]:
    """A session cookie, plus a matching XSRF cookie and header when `xsrf` is given."""
    cookie = f"agnes_session={value}"
    headers = {"Cookie": cookie + (f"; _xsrf={xsrf}" if xsrf else "")}
    if xsrf:
        headers["X-XSRFToken"] = xsrf
    return headers


def assert_401(resp, reason: str) -> None:
    assert resp.code == 401, resp.body
    assert json.loads(resp.body) == {"message": reason, "reason": "Unauthorized"}
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def utc_iso(text: object) -> dt.datetime:
    """An API time: an ISO 8601 string with an explicit UTC offset (not epoch seconds)."""
    assert isinstance(text, str) and text.endswith("+00:00"), text
    return dt.datetime.fromisoformat(text)


async def raw_post(
    port: int, path: str, headers: dict[str, str], body: dict, version: str = "HTTP/1.1"
):
    """A bare HTTP client, so the test sees the chunked framing the server chose."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} {version}", f"Host: 127.0.0.1:{port}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    status_line = await reader.readline()
    response_headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        response_headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), response_headers, reader, writer


async def read_chunks(reader) -> list[bytes]:
    return (await read_chunks_and_trailers(reader))[0]


async def read_chunks_and_trailers(reader) -> tuple[list[bytes], dict[str, str]]:
    """A chunked body's chunks, and the trailer fields after its last chunk (lower-cased)."""
    chunks = []
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            trailers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode().partition(":")
                trailers[key.strip().lower()] = value.strip()
            return chunks, trailers
        chunks.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"
