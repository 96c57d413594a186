"""Request bodies on every route of the bot's server (issue 11 item 9).

* A body over the cap (``SWITCHBOARD_MAX_REQUEST_BYTES``, 1 MiB) gets 413 without being read:
  at once when its Content-Length says so, else as soon as the streamed bytes pass the cap,
  and the connection is closed, so the sender cannot push the rest. The server's memory does
  not grow with the body.
* Malformed payloads get 400 with a short JSON error, never 500, and log no traceback: on
  ``/slack/events`` after the signature check (unsigned ones get 401), on ``/hooks/NAME`` after
  authentication; malformed OAuth callback queries get the 400 page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from storage.runs import RunStore
from tests.bot.test_commands import GREET
from tests.bot.test_webhooks import add_secret, signed
from tests.fakes.slack import sign, slash_command
from tests.helpers.bot_server import Bot, bot_settings, serve_runtime
from tests.helpers.polling import apoll_until

CAP = 1024 * 1024
HUGE = 200 * 1024 * 1024
CHUNK = b"x" * (64 * 1024)
FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


# --- a raw HTTP/1.1 sender that notices when the server stops listening -------------------


@dataclass
class Exchange:
    answer: bytes  # everything the server sent back
    sent: int  # body bytes the sender got out before the server closed the connection

    @property
    def status(self) -> int:
        match = re.match(rb"HTTP/1\.1 (\d{3}) ", self.answer)
        assert match, f"no HTTP answer: {self.answer[:200]!r}"
        return int(match.group(1))

    @property
    def headers(self) -> str:
        return self.answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()

    @property
    def body(self) -> bytes:
        return self.answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.answer else b""


def exchange(url: str, method: str, path: str, headers: dict[str, str], *, chunked: int = 0) -> Exchange:
    """Send a request over a raw socket while another thread reads the answer.

    ``chunked``: stream a chunked body of that many bytes, one reused 64 KiB chunk at a time
    (nothing big is ever built here), until all is sent or the server closes the connection.
    Without it only the head is sent (its Content-Length may promise a body never sent).
    """
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=60)  # only stops a hang
    received = bytearray()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                received.extend(data)
        except OSError:
            pass  # reset after the answer: what came before it was read

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address.netloc}"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sent = 0
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n"
        while sent < chunked:
            sock.sendall(frame)
            sent += len(CHUNK)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection before the body was all sent
    reader.join(timeout=60)
    sock.close()
    return Exchange(bytes(received), sent)


# --- memory of this process (the bot's server runs in it) ---------------------------------


def _status_kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert found, field
    return int(found.group(1))


@pytest.fixture
def peak_memory() -> Iterator[dict[str, int]]:
    """Resets this process's peak RSS; ``grown`` (bytes) is filled in when the test ends."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        if os.environ.get("CI") == "true":  # CI runs on Linux: the memory bound must be measured there
            pytest.fail("cannot reset the peak RSS (/proc/self/clear_refs) to measure the memory bound")
        pytest.skip("needs Linux /proc/self/clear_refs to measure the peak memory")
    measured = {"start": _status_kib("VmRSS") * 1024}
    yield measured


def grown(measured: dict[str, int]) -> int:
    return _status_kib("VmHWM") * 1024 - measured["start"]


# --- logs ---------------------------------------------------------------------------------


@pytest.fixture
def server_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Captures the server's logs too (uvicorn's loggers do not propagate to the root)."""
    caplog.set_level(logging.INFO)
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with_trace = [r.getMessage() for r in caplog.records if r.exc_info or r.stack_info]
    assert with_trace == [], with_trace
    assert "Traceback" not in caplog.text


# --- the size cap -------------------------------------------------------------------------


async def hooked(bot: Bot) -> str:
    await bot.apply(GREET)
    return await add_secret(bot, "greet")


@pytest.mark.parametrize("path", ["/hooks/greet", "/slack/events", "/hooks/no-such-workflow"])
async def test_a_huge_chunked_body_gets_413_without_being_read(
    bot: Bot, path: str, peak_memory: dict[str, int], server_logs: pytest.LogCaptureFixture
) -> None:
    await hooked(bot)
    headers = {**sign(b"whatever"), **signed("a-guess", b"whatever"), "Content-Type": JSON_TYPE}
    answer = await asyncio.to_thread(exchange, bot.url, "POST", path, headers, chunked=HUGE)
    growth = grown(peak_memory)
    measured = f"the sender got {answer.sent:,} of {HUGE:,} bytes out; the process grew by {growth:,} bytes"
    assert answer.sent < HUGE // 4 and growth < 64 * 1024 * 1024, measured
    assert answer.status == 413, answer.answer[:300]
    assert json.loads(answer.body) == {"error": "the request body is over the 1,048,576 bytes allowed"}
    assert "connection: close" in answer.headers
    assert_no_traceback(server_logs)


@pytest.mark.parametrize("method,path", [("GET", "/healthz"), ("POST", "/nowhere"), ("GET", "/oauth/github/callback")])
async def test_a_route_that_reads_no_body_closes_the_connection_instead_of_draining_it(
    bot: Bot, method: str, path: str, peak_memory: dict[str, int]
) -> None:
    answer = await asyncio.to_thread(exchange, bot.url, method, path, {}, chunked=HUGE)
    assert answer.status < 500, answer.answer[:300]
    assert "connection: close" in answer.headers
    assert answer.sent < HUGE // 4, f"the sender got {answer.sent:,} of {HUGE:,} bytes out"
    assert grown(peak_memory) < 64 * 1024 * 1024, f"the process grew by {grown(peak_memory):,} bytes"


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/hooks/greet"),
        ("POST", "/slack/events"),
        ("GET", "/healthz"),
        ("GET", "/oauth/github/callback"),
        ("POST", "/nowhere"),
    ],
)
async def test_a_declared_length_over_the_cap_gets_413_before_any_body_is_sent(
    bot: Bot, method: str, path: str
) -> None:
    await hooked(bot)
    headers = {**sign(b"x"), "Content-Type": JSON_TYPE, "Content-Length": str(HUGE)}
    answer = await asyncio.to_thread(exchange, bot.url, method, path, headers)  # no body at all
    assert answer.status == 413, answer.answer[:300]
    assert json.loads(answer.body)["error"].startswith("the request body is over")
    assert "connection: close" in answer.headers


async def test_the_cap_is_a_setting_and_a_body_at_the_cap_is_read(bot: Bot, tmp_path: Path) -> None:
    secret = await hooked(bot)
    at_cap = b'{"name": "' + b"a" * (CAP - 12) + b'"}'
    assert len(at_cap) == CAP
    response = await bot.post(signed(secret, at_cap), at_cap, path="/hooks/greet")
    assert response.status_code == 202, response.text[:300]  # read, verified and run
    over = at_cap + b" "
    response = await bot.post(signed(secret, over), over, path="/hooks/greet")
    assert response.status_code == 413
    await bot.settle()

    small = bot_settings(tmp_path, bot.slack, bot.runtime.settings.effective_database_url, max_request_bytes=4096)
    async with serve_runtime(small, bot.slack, bot.http) as capped:
        body = b'{"name": "' + b"a" * 5000 + b'"}'
        response = await capped.post(signed(secret, body), body, path="/hooks/greet")
        assert response.status_code == 413
        assert response.json() == {"error": "the request body is over the 4,096 bytes allowed"}
        headers, command = slash_command("help", response_url=bot.slack.response_url("capped"))
        assert (await capped.post(headers, command)).status_code == 200  # a small body still goes through
        await apoll_until(lambda: bot.slack.responses("capped"), message="the capped bot's answer to /flow help")


# --- malformed payloads -------------------------------------------------------------------

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
BIG_INT = "9" * 5000
_, COMMAND = slash_command("help")

#: name -> (Content-Type, body), each signed correctly
SLACK_CASES: dict[str, tuple[str | None, bytes]] = {
    "payload not JSON": (FORM, b"payload={not-json"),
    "payload a JSON array": (FORM, urlencode({"payload": "[1,2]"}).encode()),
    "payload a JSON string": (FORM, urlencode({"payload": '"block_actions"'}).encode()),
    "payload 100k deep": (FORM, urlencode({"payload": DEEP_ARRAY}).encode()),
    "payload with a 5000-digit integer": (
        FORM,
        urlencode({"payload": '{"type": "block_actions", "n": ' + BIG_INT + "}"}).encode(),
    ),
    "payload with NaN": (FORM, urlencode({"payload": '{"type": "block_actions", "n": NaN}'}).encode()),
    "payload empty": (FORM, b"payload="),
    "payload not UTF-8 once decoded": (FORM, b"payload=%FF%FE"),
    "no payload, command or event": (FORM, b"foo=bar"),
    "empty body": (FORM, b""),
    "body not UTF-8": (FORM, b"payload=%7B%7D&x=\xff\xfe"),
    "JSON array": (JSON_TYPE, b"[1,2]"),
    "JSON 100k deep": (JSON_TYPE, DEEP_OBJECT.encode()),
    "JSON with a 5000-digit integer": (JSON_TYPE, ('{"type": "event_callback", "n": ' + BIG_INT + "}").encode()),
    "JSON broken": (JSON_TYPE, b'{"type": "event_callback",'),
    "JSON without a type": (JSON_TYPE, b'{"event": {}}'),
    "JSON content type, form body": (JSON_TYPE, COMMAND),
    "text/plain": ("text/plain", COMMAND),
    "multipart": (
        "multipart/form-data; boundary=b",
        b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
    ),
    "no content type": (None, COMMAND),
}


async def test_malformed_slack_requests_get_400_when_signed_and_401_when_not(
    bot: Bot, server_logs: pytest.LogCaptureFixture
) -> None:
    for case, (content_type, body) in SLACK_CASES.items():
        headers = sign(body)
        headers.pop("Content-Type")
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await bot.post(headers, body)
        assert response.status_code == 400, (case, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert isinstance(error, str) and 10 < len(error) < 300, (case, error)

        unsigned = {k: v for k, v in headers.items() if not k.startswith("X-Slack")}
        response = await bot.post(unsigned, body)
        assert (response.status_code, response.json()) == (401, {"error": "invalid request"}), case
    assert bot.slack.calls() == []
    assert_no_traceback(server_logs)


async def test_malformed_slack_signature_headers_get_401(bot: Bot, server_logs: pytest.LogCaptureFixture) -> None:
    headers, body = slash_command("help")
    stamp = headers["X-Slack-Request-Timestamp"]
    for case, timestamp in {
        "not a number": "yesterday",
        "a float": stamp + ".5",
        "40 digits": "9" * 40,
        "leading zero": "0" + stamp,
        "empty": "",
    }.items():
        response = await bot.post({**headers, "X-Slack-Request-Timestamp": timestamp}, body)
        assert (response.status_code, response.json()) == (401, {"error": "invalid request"}), case
    for signature in ("", "v0=", "v0=zz", "v1=" + "0" * 64, "x" * 5000):
        response = await bot.post({**headers, "X-Slack-Signature": signature}, body)
        assert response.status_code == 401, signature[:20]
    assert_no_traceback(server_logs)


#: name -> body, each signed with the workflow's secret
HOOK_CASES: dict[str, bytes] = {
    "100k-deep object": DEEP_OBJECT.encode(),
    "100k-deep array": DEEP_ARRAY.encode(),
    "5000-digit integer": b'{"name": "Ada", "times": ' + BIG_INT.encode() + b"}",
    "a float too large": b'{"name": "Ada", "times": 1e999}',
    "NaN": b'{"name": "Ada", "times": NaN}',
    "the same key twice": b'{"name": "Ada", "name": "Eve"}',
    "not UTF-8": b'{"name": "\xff\xfe"}',
    "form-encoded": b"payload={not-json",
    "a JSON array": b"[1,2]",
    "broken JSON": b'{"name": ',
}


async def test_malformed_webhook_bodies_get_400_and_run_nothing(
    bot: Bot, server_logs: pytest.LogCaptureFixture
) -> None:
    secret = await hooked(bot)
    for case, body in HOOK_CASES.items():
        response = await bot.post(signed(secret, body), body, path="/hooks/greet")
        assert response.status_code == 400, (case, response.status_code, response.text[:300])
        error = response.json()["error"]
        assert isinstance(error, str) and len(error) < 300, (case, error)
    assert await RunStore(bot.engine).list(limit=50) == []
    assert_no_traceback(server_logs)


async def test_malformed_oauth_callback_queries_get_the_400_page(
    bot: Bot, server_logs: pytest.LogCaptureFixture
) -> None:
    queries = [
        "",
        "?state=",
        "?code=x",
        "?state=%FF%FE&code=x",
        "?state=%00&code=%00",
        "?state=a&state=b&code=x",
        "?state=" + "s" * 8000 + "&code=x",
        "?%zz=%zz&state",
        "?state=x&error=" + "%3Cscript%3E" * 100,
    ]
    for query in queries:
        response = await bot.http.get(f"{bot.url}/oauth/github/callback{query}")
        assert response.status_code == 400, (query[:40], response.status_code)
        assert "<script>" not in response.text
    weird = await bot.http.get(f"{bot.url}/oauth/%00%FF/callback?state=x&code=y")
    assert weird.status_code in (400, 404)
    assert_no_traceback(server_logs)


def test_the_settings_document_the_cap() -> None:
    from switchboard.settings import Settings

    assert Settings().max_request_bytes == CAP
    docs = (Path(__file__).parents[2] / "docs" / "slack.md").read_text()
    assert "SWITCHBOARD_MAX_REQUEST_BYTES" in docs
    with pytest.raises(ValueError):
        Settings(max_request_bytes=10)
