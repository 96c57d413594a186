"""A fake GitHub REST API (the endpoints the GitHub nodes use) on a FakeHTTP server."""

from __future__ import annotations

import base64
import hashlib

from tests.fakes.http import FakeHTTP, Reply


class FakeGitHub:
    """GitHub Enterprise-style paths under ``/api/v3``; absolute URLs point back at the fake."""

    def __init__(self, http: FakeHTTP) -> None:
        self.http = http

    @property
    def base_url(self) -> str:
        return self.http.url("/api/v3")

    def contents_path(self, repo: str, path: str) -> str:
        return f"/api/v3/repos/{repo}/contents/{path}"

    def add_file(self, repo: str, path: str, content: bytes, *replies_before: Reply) -> str:
        """Serve ``content`` at ``path`` (after any ``replies_before``, e.g. a 429); returns its sha."""
        sha = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        api_path = self.contents_path(repo, path)
        body = {
            "type": "file",
            "encoding": "base64",
            "content": base64.b64encode(content).decode(),
            "sha": sha,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "size": len(content),
            "url": self.http.url(api_path),
            "html_url": f"https://github.example/{repo}/blob/main/{path}",
            "download_url": self.http.url(f"/raw/{repo}/{path}"),
        }
        self.http.script("GET", api_path, *replies_before, Reply(200, body))
        return sha


def issue_json(
    http: FakeHTTP, repo: str, number: int, *, title: str, body: str | None, labels: list[str]
) -> dict[str, object]:
    api = f"/api/v3/repos/{repo}/issues/{number}"
    return {
        "id": 1000 + number,
        "number": number,
        "title": title,
        "body": body,
        "state": "open",
        "labels": [{"name": name} for name in labels],
        "user": {"login": "octo"},
        "html_url": f"https://github.example/{repo}/issues/{number}",
        "url": http.url(api),
        "comments_url": http.url(api + "/comments"),
        "labels_url": http.url(api + "/labels{/name}"),
        "repository_url": http.url(f"/api/v3/repos/{repo}"),
    }


def comment_json(id_: int, body: str) -> dict[str, object]:
    return {"id": id_, "body": body, "user": {"login": "octo"}, "html_url": f"https://github.example/c/{id_}"}
