"""`switchboard webhooks`: secrets shown once, stored encrypted, listed by name only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import switchboard
from switchboard import webhooks
from switchboard.cli import app
from tests.bot.test_commands import GREET

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "switchboard.db"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "https://bot.example.com/")
    workflow = tmp_path / "greet.yaml"
    workflow.write_text(yaml.safe_dump(GREET))
    applied = runner.invoke(app, ["apply", str(workflow)])
    assert applied.exit_code == 0, applied.output
    return path


def printed_secret(output: str) -> str:
    found = re.search(r"SECRET='([A-Za-z0-9_-]+)'", output)
    assert found, output
    return found.group(1)


async def stored_secret(name: str) -> str | None:
    async with switchboard.default_client() as client:
        return await client.webhooks.get(name)


def test_add_prints_the_secret_once_with_url_and_curl_example(database: Path) -> None:
    added = runner.invoke(app, ["webhooks", "add", "greet"])
    assert added.exit_code == 0, added.output
    secret = printed_secret(added.stdout)
    assert len(secret) >= 43  # secrets.token_urlsafe(32)
    assert added.stdout.count(secret) == 1
    assert "URL: https://bot.example.com/hooks/greet" in added.stdout
    assert "X-Switchboard-Signature: sha256=$SIG" in added.stdout and "openssl dgst -sha256 -hmac" in added.stdout
    assert asyncio.run(stored_secret("greet")) == secret

    listed = runner.invoke(app, ["webhooks", "list"])
    assert listed.exit_code == 0
    assert "greet  https://bot.example.com/hooks/greet" in listed.stdout
    assert secret not in listed.stdout
    credentials = runner.invoke(app, ["credentials", "list", "--json"])
    assert secret not in credentials.stdout
    assert secret.encode() not in database.read_bytes()


def test_add_twice_rotate_remove(database: Path) -> None:
    first = printed_secret(runner.invoke(app, ["webhooks", "add", "greet"]).stdout)
    again = runner.invoke(app, ["webhooks", "add", "greet"])
    assert again.exit_code == 2 and "switchboard webhooks rotate greet" in again.stderr

    rotated = runner.invoke(app, ["webhooks", "rotate", "greet"])
    assert rotated.exit_code == 0 and "rotated webhook secret for greet" in rotated.stdout
    second = printed_secret(rotated.stdout)
    assert second != first and asyncio.run(stored_secret("greet")) == second

    removed = runner.invoke(app, ["webhooks", "remove", "greet"])
    assert removed.exit_code == 0
    assert asyncio.run(stored_secret("greet")) is None
    assert "no webhooks" in runner.invoke(app, ["webhooks", "list"]).stdout
    gone = runner.invoke(app, ["webhooks", "remove", "greet"])
    assert gone.exit_code == 2 and "switchboard webhooks add greet" in gone.stderr
    assert runner.invoke(app, ["webhooks", "rotate", "greet"]).exit_code == 2


def test_add_for_an_unknown_workflow_says_so(database: Path) -> None:
    result = runner.invoke(app, ["webhooks", "add", "nobody"])
    assert result.exit_code == 2
    assert "no stored workflow named 'nobody'" in result.stderr


def test_signing_helpers_match_the_documented_format() -> None:
    headers = webhooks.signed_headers("s3cret", b'{"a": 1}', timestamp=1700000000)
    assert headers["X-Switchboard-Timestamp"] == "1700000000"
    # printf '1700000000.{"a": 1}' | openssl dgst -sha256 -hmac s3cret
    expected = "sha256=82fc0b8ba35d4f5b38af534e00d41a2de7d21fa3bae904bd50a8f0c3a7afb835"
    assert headers["X-Switchboard-Signature"] == expected
    assert (
        webhooks.verify(
            "s3cret",
            timestamp="1700000000",
            signature_header=headers["X-Switchboard-Signature"],
            body=b'{"a": 1}',
            now=1700000299,
        )
        == 1700000000
    )
    with pytest.raises(webhooks.SignatureError, match="±300 s"):
        webhooks.verify(
            "s3cret",
            timestamp="1700000000",
            signature_header=headers["X-Switchboard-Signature"],
            body=b'{"a": 1}',
            now=1700000301,
        )


# --- --secret-stdin: a secret chosen elsewhere (GitHub's, a provider's signing secret) ---------

CHOSEN = "whsec_" + "k3y" * 10  # 36 printable characters, as a provider would issue
OTHER = "a-second-provider-secret-0123456789"


def signature_of(secret: str, timestamp: int, body: bytes) -> str:
    """Switchboard's documented header value, computed here independently."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verifies(stored: str | None, signed_with: str) -> bool:
    """Whether a request signed with ``signed_with`` passes the library's check against ``stored``."""
    assert stored is not None
    body, stamp = b'{"name": "Ada"}', int(time.time())
    try:
        webhooks.verify(
            stored, timestamp=str(stamp), signature_header=signature_of(signed_with, stamp, body), body=body
        )
    except webhooks.SignatureError:
        return False
    return True


def test_add_with_secret_stdin_stores_the_given_secret_and_never_prints_it(database: Path) -> None:
    added = runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=CHOSEN + "\n")
    assert added.exit_code == 0, added.output
    assert CHOSEN not in added.stdout and CHOSEN not in added.stderr
    assert "stored webhook secret for greet from stdin (stored encrypted; not shown)" in added.stdout
    assert "URL: https://bot.example.com/hooks/greet" in added.stdout
    assert "SECRET=" not in added.stdout  # no curl example: it would show the secret
    stored = asyncio.run(stored_secret("greet"))
    assert stored == CHOSEN  # one trailing newline dropped, nothing else
    assert verifies(stored, CHOSEN) and not verifies(stored, OTHER)
    assert CHOSEN.encode() not in database.read_bytes()
    listed = runner.invoke(app, ["webhooks", "list"])
    assert "greet  https://bot.example.com/hooks/greet" in listed.stdout and CHOSEN not in listed.stdout


def test_secret_stdin_drops_one_crlf_and_nothing_else(database: Path) -> None:
    added = runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=CHOSEN + "\r\n")
    assert added.exit_code == 0, added.output
    assert asyncio.run(stored_secret("greet")) == CHOSEN
    unterminated = runner.invoke(app, ["webhooks", "rotate", "greet", "--secret-stdin"], input=OTHER)
    assert unterminated.exit_code == 0, unterminated.output
    assert asyncio.run(stored_secret("greet")) == OTHER


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("short-secret", "the secret is 12 characters: use at least 16"),
        ("", "the secret is empty: use at least 16"),
        ("x" * 513, "the secret is longer than 512 characters"),
        (" " + CHOSEN, "starts or ends with a blank"),
        (CHOSEN + "\t", "one line of printable ASCII"),
        (CHOSEN + "\n" + CHOSEN, "one line of printable ASCII"),
    ],
)
def test_an_unusable_secret_on_stdin_exits_2_saying_why_and_stores_nothing(
    database: Path, given: str, message: str
) -> None:
    result = runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=given + "\n")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    if given.strip():
        assert given.strip() not in result.stdout and given.strip() not in result.stderr
    assert asyncio.run(stored_secret("greet")) is None


def test_rotate_with_secret_stdin_replaces_the_secret(database: Path) -> None:
    assert runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=CHOSEN + "\n").exit_code == 0
    rotated = runner.invoke(app, ["webhooks", "rotate", "greet", "--secret-stdin"], input=OTHER + "\n")
    assert rotated.exit_code == 0, rotated.output
    assert "rotated webhook secret for greet from stdin (stored encrypted; not shown)" in rotated.stdout
    for secret in (CHOSEN, OTHER):
        assert secret not in rotated.stdout and secret not in rotated.stderr
    stored = asyncio.run(stored_secret("greet"))
    assert stored == OTHER
    assert verifies(stored, OTHER) and not verifies(stored, CHOSEN)  # the old one stops working at once


def test_rotate_with_a_too_short_secret_keeps_the_old_one(database: Path) -> None:
    assert runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=CHOSEN + "\n").exit_code == 0
    result = runner.invoke(app, ["webhooks", "rotate", "greet", "--secret-stdin"], input="tiny\n")
    assert result.exit_code == 2
    assert "use at least 16" in result.stderr and "tiny" not in result.stderr
    assert asyncio.run(stored_secret("greet")) == CHOSEN


def test_add_with_secret_stdin_for_a_workflow_with_a_secret_refuses_without_printing_either(database: Path) -> None:
    assert runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=CHOSEN + "\n").exit_code == 0
    again = runner.invoke(app, ["webhooks", "add", "greet", "--secret-stdin"], input=OTHER + "\n")
    assert again.exit_code == 2
    assert "switchboard webhooks rotate greet" in again.stderr
    for secret in (CHOSEN, OTHER):
        assert secret not in again.stdout and secret not in again.stderr
    assert asyncio.run(stored_secret("greet")) == CHOSEN
