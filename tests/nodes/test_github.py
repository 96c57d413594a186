"""github.read_file against a fake GitHub over real HTTP."""

from __future__ import annotations

import pytest

from nodes.errors import AuthError, ProviderError, TransientError
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, make_context


@pytest.fixture
def github(fake_http: FakeHTTP) -> FakeGitHub:
    return FakeGitHub(fake_http)


def ctx_for(github: FakeGitHub) -> object:
    return make_context(credential={"token": "ghp_test", "base_url": github.base_url})


async def test_read_file_decodes_text_and_sends_the_token(github: FakeGitHub) -> None:
    sha = github.add_file("acme/api", "README.md", b"# Acme API\nDoes things.\n")
    out = await call_node("github.read_file", {"repo": "acme/api", "path": "README.md", "ref": "main"}, ctx_for(github))
    assert out == {"content": "# Acme API\nDoes things.\n", "sha": sha, "path": "README.md", "size": 24, "file": None}
    request = github.http.calls(github.contents_path("acme/api", "README.md"))[0]
    assert request.query == {"ref": ["main"]}
    assert request.headers["authorization"] == "token ghp_test"


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (Reply(404, {"message": "Not Found"}), ProviderError, "Not Found"),
        (Reply(401, {"message": "Bad credentials"}), AuthError, "reconnect credential 'test-credential'"),
        (Reply(429, {"message": "slow down"}, {"Retry-After": "3"}), TransientError, "slow down"),
        (Reply(502, {"message": "bad gateway"}), TransientError, "bad gateway"),
    ],
)
async def test_errors_map_onto_the_error_tree(
    github: FakeGitHub, reply: Reply, error: type[Exception], text: str
) -> None:
    github.http.script("GET", github.contents_path("acme/api", "x.md"), reply)
    with pytest.raises(error, match=text) as raised:
        await call_node("github.read_file", {"repo": "acme/api", "path": "x.md"}, ctx_for(github))
    assert type(raised.value) is error
    if isinstance(raised.value, TransientError) and reply.status == 429:
        assert raised.value.retry_after == 3.0
    assert len(github.http.calls(github.contents_path("acme/api", "x.md"))) == 1, "no library-level retries"
