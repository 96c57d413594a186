"""One case per registered provider: its fake, one node call, its error body shape.

The error suite (``test_provider_errors.py``) runs every case; ``test_providers.py`` checks
that every provider in :data:`nodes.providers.PROVIDERS` has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

import nodes.slack
from nodes.ai import transport as ai_transport
from nodes.airtable import transport as airtable_transport
from nodes.gdrive import transport as gdrive_transport
from nodes.github import transport as github_transport
from nodes.hubspot import transport as hubspot_transport
from nodes.rest import RestProvider
from tests.fakes.airtable import FakeAirtable
from tests.fakes.gdrive import FakeDrive
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.openai import FakeOpenAI, completion
from tests.fakes.slack import FakeSlack

TOKEN = "good-token"
BASE = "appTestBase000001"
#: Seconds a request may take in the timeout cases (the fake holds its answer until released).
SHORT = 0.5


@dataclass(frozen=True)
class Case:
    provider: str
    #: The fake's class (a module of tests/fakes).
    fake: type
    #: Builds the fake on ``http`` with its data; ``token`` None: a FakeOAuth decides the tokens.
    start: Callable[[FakeHTTP, str | None], Any]
    base_url: Callable[[Any], str]
    node: str
    params: dict[str, Any]
    #: The path prefix the node's requests go to (faults are injected there).
    api: str
    #: The provider's error body carrying ``message``.
    body: Callable[[str], Any]
    #: Makes the family's requests give up after :data:`SHORT` seconds.
    shorten: Callable[[pytest.MonkeyPatch], None]
    #: ``(node, params, text)``: a call for something that does not exist and what its error names;
    #: None: an injected 404 must name the request.
    missing: tuple[str, dict[str, Any], str] | None = None

    def __str__(self) -> str:
        return self.provider


def _github(http: FakeHTTP, token: str | None) -> FakeGitHub:
    if token is not None:
        http.require_token(token)
    github = FakeGitHub(http)
    github.store_file("acme/api", "README.md", b"# Acme\n")
    return github


def _airtable(http: FakeHTTP, token: str | None) -> FakeAirtable:
    airtable = FakeAirtable(http, token=token)
    airtable.add_table(BASE, "Tasks", [{"Name": "a"}])
    return airtable


def _drive(http: FakeHTTP, token: str | None) -> FakeDrive:
    drive = FakeDrive(http, token=token)
    drive.add("f1", "a.txt", "text/plain", b"a")
    return drive


def _hubspot(http: FakeHTTP, token: str | None) -> FakeHubSpot:
    hubspot = FakeHubSpot(http, token=token)
    hubspot.add_contact(email="ada@acme.io", firstname="Ada")
    return hubspot


def _openai(http: FakeHTTP, token: str | None) -> FakeOpenAI:
    if token is not None:
        http.require_token(token)
    ai = FakeOpenAI(http)
    ai.reply(completion("ok"))
    return ai


def _slack(http: FakeHTTP, token: str | None) -> FakeSlack:
    return FakeSlack(http, token=token or "xoxb-unused")


def _shorten_rest(module: Any, attr: str) -> Callable[[pytest.MonkeyPatch], None]:
    def shorten(monkeypatch: pytest.MonkeyPatch) -> None:
        rest: RestProvider = getattr(module, attr)
        monkeypatch.setattr(module, attr, replace(rest, provider=replace(rest.provider, timeout=SHORT)))

    return shorten


CASES: dict[str, Case] = {
    case.provider: case
    for case in (
        Case(
            "github",
            FakeGitHub,
            _github,
            lambda fake: fake.base_url,
            "github.read_file",
            {"repo": "acme/api", "path": "README.md"},
            "/api/v3/",
            lambda message: {"message": message, "documentation_url": "https://docs.github.com/rest"},
            lambda mp: mp.setattr(github_transport, "TIMEOUT_SECONDS", 1),  # PyGithub takes whole seconds
            ("github.read_file", {"repo": "acme/api", "path": "MISSING.md"}, "'MISSING.md' in acme/api"),
        ),
        Case(
            "airtable",
            FakeAirtable,
            _airtable,
            lambda fake: fake.base_url,
            "airtable.list_records",
            {"base": BASE, "table": "Tasks"},
            "/v0/",
            lambda message: {"error": {"type": "INVALID_REQUEST", "message": message}},
            lambda mp: mp.setattr(airtable_transport, "TIMEOUT", (5, SHORT)),
            (
                "airtable.get_record",
                {"base": BASE, "table": "Tasks", "record_id": "recMissing0000001"},
                "recMissing0000001",
            ),
        ),
        Case(
            "gdrive",
            FakeDrive,
            _drive,
            lambda fake: fake.base_url,
            "gdrive.list_files",
            {},
            "/drive/v3/",
            lambda message: {
                "error": {"code": 400, "message": message, "errors": [{"reason": "x", "message": message}]}
            },
            _shorten_rest(gdrive_transport, "DRIVE"),
        ),
        Case(
            "hubspot",
            FakeHubSpot,
            _hubspot,
            lambda fake: fake.base_url,
            "hubspot.search_contacts",
            {"query": "ada"},
            "/crm/v3/",
            lambda message: {"status": "error", "message": message, "correlationId": "c-1", "category": "X"},
            _shorten_rest(hubspot_transport, "HUBSPOT"),
        ),
        Case(
            "openai",
            FakeOpenAI,
            _openai,
            lambda fake: fake.base_url,
            "ai.chat",
            {"prompt": "hi"},
            "/v1/",
            lambda message: {"error": {"message": message, "type": "invalid_request_error"}},
            lambda mp: mp.setattr(ai_transport, "TIMEOUT_SECONDS", SHORT),
        ),
        Case(
            "slack",
            FakeSlack,
            _slack,
            lambda fake: fake.api_url,
            "slack.post_message",
            {"channel": "C1", "text": "hi"},
            "/api/",
            lambda message: {"ok": False, "error": message},
            _shorten_rest(nodes.slack, "SLACK"),
        ),
    )
}
