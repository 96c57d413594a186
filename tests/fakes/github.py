"""A fake GitHub REST API (the endpoints the GitHub nodes use) on a FakeHTTP server.

Two ways to serve data, both over real HTTP:

* scripted replies (``add_file``, or ``http.script`` with :func:`issue_json` /
  :func:`comment_json`) for read-only cases;
* a small stateful repository (``store_file``, ``add_issue``, ``add_pull``) answering like
  GitHub does: the contents API (``GET``/``PUT /repos/{o}/{r}/contents/{path}`` with the blob
  sha check), issue and pull request listings (``page``/``per_page``, a ``Link`` header with
  absolute URLs back to the fake), and opening pull requests (422 on a duplicate).

``fail_next`` queues error replies (a 429, a 502) in front of a stateful endpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from nodes.context import CredentialResolver
from nodes.errors import AuthError
from tests.fakes.http import FakeHTTP, Recorded, Reply

API = "/api/v3"
HTML = "https://github.example"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100
DOCS = "https://docs.github.com/rest"


def blob_sha(content: bytes) -> str:
    """Git's blob id, as GitHub reports it in ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str = "octo") -> dict[str, object]:
    return {"login": login, "id": 1, "type": "User", "html_url": f"{HTML}/{login}"}


def _error(status: int, message: str, doc: str, **extra: object) -> Reply:
    return Reply(status, {"message": message, **extra, "documentation_url": f"{DOCS}/{doc}", "status": str(status)})


@dataclass
class _Repo:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (branch, path) -> content
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # pull requests are issues too
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)


class FakeGitHub:
    """GitHub Enterprise-style paths under ``/api/v3``; absolute URLs point back at the fake."""

    def __init__(self, http: FakeHTTP) -> None:
        self.http = http
        #: Every commit the contents API made: repo, branch, path, message, sha, content.
        self.commits: list[dict[str, Any]] = []
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.RLock()
        self._commit_ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.http.url(API)

    def contents_path(self, repo: str, path: str) -> str:
        return f"{API}/repos/{repo}/contents/{path}"

    def issues_path(self, repo: str) -> str:
        return f"{API}/repos/{repo}/issues"

    def pulls_path(self, repo: str) -> str:
        return f"{API}/repos/{repo}/pulls"

    # scripted (read-only) -------------------------------------------------------------------

    def add_file(self, repo: str, path: str, content: bytes, *replies_before: Reply) -> str:
        """Serve ``content`` at ``path`` (after any ``replies_before``, e.g. a 429); returns its sha."""
        self.http.script(
            "GET", self.contents_path(repo, path), *replies_before, Reply(200, self._file_json(repo, path, content))
        )
        return blob_sha(content)

    # stateful repository --------------------------------------------------------------------

    def add_repo(self, repo: str) -> None:
        """An (empty) stateful repository: its contents, issues and pulls endpoints answer."""
        with self._lock:
            self._repo(repo)

    def store_file(self, repo: str, path: str, content: bytes, *, branch: str = "main") -> str:
        """Put a file into the stateful repository (readable and writable); returns its sha."""
        with self._lock:
            self._repo(repo).files[(branch, path)] = content
        return blob_sha(content)

    def file_content(self, repo: str, path: str, *, branch: str = "main") -> bytes | None:
        with self._lock:
            return self._repo(repo).files.get((branch, path))

    def add_issue(
        self,
        repo: str,
        *,
        title: str,
        body: str | None = None,
        labels: Iterable[str] = (),
        state: str = "open",
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add an issue (numbered after every existing issue and pull request); returns its JSON."""
        with self._lock:
            number = self._next_number(repo)
            issue = issue_json(self.http, repo, number, title=title, body=body, labels=list(labels), state=state)
            if updated_at is not None:
                issue["updated_at"] = _timestamp(updated_at)
            self._repo(repo).issues[number] = issue
            return issue

    def add_issues(self, repo: str, count: int, **fields: Any) -> list[dict[str, Any]]:
        """Add ``count`` issues titled ``Issue 1`` … ``Issue N``."""
        return [self.add_issue(repo, title=f"Issue {i + 1}", **fields) for i in range(count)]

    def add_pull(
        self,
        repo: str,
        *,
        title: str,
        head: str,
        base: str = "main",
        body: str | None = None,
        state: str = "open",
        draft: bool = False,
        merged: bool = False,
        author: str = "octo",
    ) -> dict[str, Any]:
        """Add a pull request (``head``: a branch, or ``user:branch`` for a fork); returns its JSON."""
        with self._lock:
            number = self._next_number(repo)
            pull = pull_json(
                self.http,
                repo,
                number,
                title=title,
                head=head,
                base=base,
                body=body,
                state=state,
                draft=draft,
                merged=merged,
                author=author,
            )
            issue = issue_json(
                self.http, repo, number, title=title, body=body, labels=[], state=state, pull_request=True
            )
            issue["user"] = _user(author)
            self._repo(repo).pulls[number] = pull
            self._repo(repo).issues[number] = issue
            return pull

    def resolver(self, token: str = "ghp_test") -> CredentialResolver:
        """A credential resolver (for ``switchboard.arun``) handing out ``token`` for this fake."""

        async def resolve(name: str, provider: str | None, *, rejected: str | None = None) -> dict[str, Any]:
            if rejected is not None:  # a plain token cannot be refreshed
                raise AuthError("the token was refused", provider=provider or "github", credential=name, status=401)
            return {"name": name, "provider": provider, "token": token, "base_url": self.base_url}

        return resolve

    def fail_next(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to a stateful endpoint with ``replies`` (one each), then normally."""
        with self._lock:
            self._repo(self._split(path)[0])
        for reply in replies:
            self.http.fail_next(reply, method=method, path=path, prefix=False)

    # internals ------------------------------------------------------------------------------

    def _repo(self, repo: str) -> _Repo:
        if repo not in self._repos:
            self._repos[repo] = _Repo()
            prefix = f"{API}/repos/{repo}"
            self.http.route("GET", f"{prefix}/contents/", self._guarded(self._get_contents), prefix=True)
            self.http.route("PUT", f"{prefix}/contents/", self._guarded(self._put_contents), prefix=True)
            self.http.route("GET", f"{prefix}/issues", self._guarded(self._list_issues))
            self.http.route("GET", f"{prefix}/pulls", self._guarded(self._list_pulls))
            self.http.route("POST", f"{prefix}/pulls", self._guarded(self._create_pull))
        return self._repos[repo]

    def _next_number(self, repo: str) -> int:
        return max(self._repo(repo).issues, default=0) + 1

    def _guarded(self, handler: Callable[[Recorded], Reply]) -> Callable[[Recorded], Reply]:
        """``handler`` under the lock (faults queued by :meth:`fail_next` are served before it)."""

        def handle(request: Recorded) -> Reply:
            with self._lock:
                return handler(request)

        return handle

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        """``/api/v3/repos/o/r/contents/a/b.md`` -> (``o/r``, ``a/b.md``); ``.../o/r/issues`` -> (``o/r``, ``""``)."""
        owner, name, *rest = path.removeprefix(f"{API}/repos/").split("/", 3)
        return f"{owner}/{name}", rest[1] if len(rest) > 1 else ""

    def _file_json(
        self, repo: str, path: str, content: bytes, branch: str = "main", *, with_content: bool = True
    ) -> dict[str, Any]:
        """A file as the contents API describes it (a write's answer leaves the content out)."""
        sha = blob_sha(content)
        api_path = self.contents_path(repo, path)
        body: dict[str, Any] = {
            "type": "file",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "size": len(content),
            "url": self.http.url(api_path),
            "html_url": f"{HTML}/{repo}/blob/{branch}/{path}",
            "git_url": self.http.url(f"{API}/repos/{repo}/git/blobs/{sha}"),
            "download_url": self.http.url(f"/raw/{repo}/{branch}/{path}"),
            "_links": {"self": self.http.url(api_path), "html": f"{HTML}/{repo}/blob/{branch}/{path}"},
        }
        if with_content:
            body |= {"encoding": "base64", "content": base64.b64encode(content).decode()}
        return body

    def _get_contents(self, request: Recorded) -> Reply:
        repo, path = self._split(request.path)
        branch = request.query.get("ref", ["main"])[0]
        content = self._repo(repo).files.get((branch, path))
        if content is None:
            return _error(404, "Not Found", "repos/contents#get-repository-content")
        return Reply(200, self._file_json(repo, path, content, branch))

    def _put_contents(self, request: Recorded) -> Reply:
        """Create (201) or update (200) a file; an update needs the current blob sha (else 409/422)."""
        repo, path = self._split(request.path)
        doc = "repos/contents#create-or-update-file-contents"
        try:
            body = request.json()
            content = base64.b64decode(body["content"], validate=True)
            message = body["message"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error(422, 'Invalid request.\n\n"message" and base64 "content" are required.', doc)
        branch = body.get("branch") or "main"
        files = self._repo(repo).files
        current = files.get((branch, path))
        if current is not None:
            if "sha" not in body:
                return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.', doc)
            if body["sha"] != blob_sha(current):
                return _error(409, f"{path} does not match {body['sha']}", doc)
        files[(branch, path)] = content  # a sha sent for a new file is ignored, as GitHub does
        commit_sha = hashlib.sha1(b"commit %d" % next(self._commit_ids)).hexdigest()
        self.commits.append(
            {"repo": repo, "branch": branch, "path": path, "message": message, "sha": commit_sha, "content": content}
        )
        person = {"name": "Octo Cat", "email": "octo@github.example", "date": _timestamp(EPOCH)}
        commit = {
            "sha": commit_sha,
            "node_id": f"C_{commit_sha[:8]}",
            "url": self.http.url(f"{API}/repos/{repo}/git/commits/{commit_sha}"),
            "html_url": f"{HTML}/{repo}/commit/{commit_sha}",
            "author": person,
            "committer": person,
            "message": message,
            "tree": {
                "sha": hashlib.sha1(commit_sha.encode()).hexdigest(),
                "url": self.http.url(f"{API}/repos/{repo}/git/trees"),
            },
            "parents": [],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        }
        created = current is None
        return Reply(
            201 if created else 200,
            {"content": self._file_json(repo, path, content, branch, with_content=False), "commit": commit},
        )

    def _page(self, request: Recorded, items: list[dict[str, Any]]) -> Reply:
        """One page of ``items`` with GitHub's ``Link`` header (prev/next/last/first)."""
        try:
            page = max(1, int(request.query.get("page", ["1"])[0]))
            per_page = min(MAX_PER_PAGE, max(1, int(request.query.get("per_page", [str(DEFAULT_PER_PAGE)])[0])))
        except ValueError:
            return _error(422, "Validation Failed", "overview/resources-in-the-rest-api#pagination")
        last = max(1, -(-len(items) // per_page))
        query = {key: values[0] for key, values in request.query.items()}

        def link(to: int) -> str:
            return self.http.url(request.path) + "?" + urlencode({**query, "per_page": per_page, "page": to})

        rels = []
        if page > 1:
            rels.append(f'<{link(page - 1)}>; rel="prev"')
        if page < last:
            rels += [f'<{link(page + 1)}>; rel="next"', f'<{link(last)}>; rel="last"']
        if page > 1:
            rels.append(f'<{link(1)}>; rel="first"')
        headers = {"Link": ", ".join(rels)} if rels else {}
        return Reply(200, items[(page - 1) * per_page : page * per_page], headers)

    @staticmethod
    def _state_filter(request: Recorded) -> str | None:
        state = request.query.get("state", ["open"])[0]
        return state if state in ("open", "closed", "all") else None

    def _list_issues(self, request: Recorded) -> Reply:
        """``GET /repos/{o}/{r}/issues``: newest first; pull requests included (with ``pull_request``)."""
        repo, _ = self._split(request.path)
        state = self._state_filter(request)
        if state is None:
            return _error(422, "Validation Failed", "issues/issues#list-repository-issues")
        wanted = {name for name in request.query.get("labels", [""])[0].split(",") if name}
        since = request.query.get("since", [None])[0]
        since_at = datetime.fromisoformat(since) if since else None
        items = [
            issue
            for _, issue in sorted(self._repo(repo).issues.items(), reverse=True)
            if state in ("all", issue["state"])
            and wanted <= {label["name"] for label in issue["labels"]}
            and (since_at is None or datetime.fromisoformat(issue["updated_at"]) >= since_at)
        ]
        return self._page(request, items)

    def _list_pulls(self, request: Recorded) -> Reply:
        """``GET /repos/{o}/{r}/pulls``: newest first; ``head`` is ``user:branch``, ``base`` a branch."""
        repo, _ = self._split(request.path)
        state = self._state_filter(request)
        if state is None:
            return _error(422, "Validation Failed", "pulls/pulls#list-pull-requests")
        head = request.query.get("head", [None])[0]
        base = request.query.get("base", [None])[0]
        items = [
            _simple_pull(pull)
            for _, pull in sorted(self._repo(repo).pulls.items(), reverse=True)
            if state in ("all", pull["state"])
            and (head is None or pull["head"]["label"] == head)
            and (base is None or pull["base"]["ref"] == base)
        ]
        return self._page(request, items)

    def _create_pull(self, request: Recorded) -> Reply:
        """``POST /repos/{o}/{r}/pulls``: 422 for a missing field or an open duplicate (head, base)."""
        repo, _ = self._split(request.path)
        doc = "pulls/pulls#create-a-pull-request"
        try:
            body = request.json()
        except (ValueError, json.JSONDecodeError):
            return _error(400, "Problems parsing JSON", doc)
        missing = [name for name in ("head", "base", "title") if not body.get(name)]
        if missing:
            errors = [{"resource": "PullRequest", "field": name, "code": "missing_field"} for name in missing]
            return _error(422, "Validation Failed", doc, errors=errors)
        owner = repo.split("/")[0]
        label = body["head"] if ":" in body["head"] else f"{owner}:{body['head']}"
        for pull in self._repo(repo).pulls.values():
            if pull["state"] == "open" and pull["head"]["label"] == label and pull["base"]["ref"] == body["base"]:
                errors = [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {label}.",
                    }
                ]
                return _error(422, "Validation Failed", doc, errors=errors)
        pull = self.add_pull(
            repo,
            title=body["title"],
            head=body["head"],
            base=body["base"],
            body=body.get("body"),
            draft=bool(body.get("draft", False)),
        )
        return Reply(201, pull)


def issue_json(
    http: FakeHTTP,
    repo: str,
    number: int,
    *,
    title: str,
    body: str | None,
    labels: list[str],
    state: str = "open",
    pull_request: bool = False,
) -> dict[str, Any]:
    """An issue as GitHub's issues API returns it (``pull_request``: the issue is a pull request)."""
    api = f"{API}/repos/{repo}/issues/{number}"
    created = _timestamp(EPOCH + timedelta(minutes=number))
    issue: dict[str, Any] = {
        "id": 1000 + number,
        "node_id": f"I_{1000 + number}",
        "number": number,
        "title": title,
        "body": body,
        "state": state,
        "state_reason": "completed" if state == "closed" else None,
        "locked": False,
        "labels": [{"id": 100 + i, "name": name, "color": "ededed", "default": False} for i, name in enumerate(labels)],
        "user": _user(),
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 0,
        "author_association": "OWNER",
        "created_at": created,
        "updated_at": created,
        "closed_at": created if state == "closed" else None,
        "html_url": f"{HTML}/{repo}/issues/{number}",
        "url": http.url(api),
        "comments_url": http.url(api + "/comments"),
        "events_url": http.url(api + "/events"),
        "labels_url": http.url(api + "/labels{/name}"),
        "repository_url": http.url(f"{API}/repos/{repo}"),
    }
    if pull_request:
        issue["html_url"] = f"{HTML}/{repo}/pull/{number}"
        issue["pull_request"] = {
            "url": http.url(f"{API}/repos/{repo}/pulls/{number}"),
            "html_url": f"{HTML}/{repo}/pull/{number}",
            "diff_url": f"{HTML}/{repo}/pull/{number}.diff",
            "patch_url": f"{HTML}/{repo}/pull/{number}.patch",
            "merged_at": None,
        }
    return issue


def _branch(http: FakeHTTP, repo: str, label: str) -> dict[str, Any]:
    owner, ref = label.split(":", 1)
    full_name = f"{owner}/{repo.split('/')[1]}"
    return {
        "label": label,
        "ref": ref,
        "sha": hashlib.sha1(label.encode()).hexdigest(),
        "user": _user(owner),
        "repo": {
            "id": 7,
            "name": full_name.split("/")[1],
            "full_name": full_name,
            "url": http.url(f"{API}/repos/{full_name}"),
            "html_url": f"{HTML}/{full_name}",
        },
    }


def pull_json(
    http: FakeHTTP,
    repo: str,
    number: int,
    *,
    title: str,
    head: str,
    base: str = "main",
    body: str | None = None,
    state: str = "open",
    draft: bool = False,
    merged: bool = False,
    author: str = "octo",
) -> dict[str, Any]:
    """A pull request as ``GET /repos/{o}/{r}/pulls/{n}`` (and creating one) returns it."""
    owner = repo.split("/")[0]
    api = f"{API}/repos/{repo}/pulls/{number}"
    created = _timestamp(EPOCH + timedelta(minutes=number))
    merged_at = created if merged else None
    return {
        "id": 5000 + number,
        "node_id": f"PR_{5000 + number}",
        "number": number,
        "title": title,
        "body": body,
        "state": "closed" if merged else state,
        "locked": False,
        "draft": draft,
        "user": _user(author),
        "labels": [],
        "created_at": created,
        "updated_at": created,
        "closed_at": merged_at if merged else (created if state == "closed" else None),
        "merged_at": merged_at,
        "merge_commit_sha": None,
        "head": _branch(http, repo, head if ":" in head else f"{owner}:{head}"),
        "base": _branch(http, repo, f"{owner}:{base}"),
        "author_association": "OWNER",
        "url": http.url(api),
        "html_url": f"{HTML}/{repo}/pull/{number}",
        "diff_url": f"{HTML}/{repo}/pull/{number}.diff",
        "patch_url": f"{HTML}/{repo}/pull/{number}.patch",
        "issue_url": http.url(f"{API}/repos/{repo}/issues/{number}"),
        "commits_url": http.url(api + "/commits"),
        "comments_url": http.url(f"{API}/repos/{repo}/issues/{number}/comments"),
        # only the single-pull-request shape has these (listings leave them out)
        "merged": merged,
        "mergeable": None,
        "mergeable_state": "unknown",
        "merged_by": None,
        "comments": 0,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
        "maintainer_can_modify": False,
    }


_FULL_ONLY = (
    "merged",
    "mergeable",
    "mergeable_state",
    "merged_by",
    "comments",
    "commits",
    "additions",
    "deletions",
    "changed_files",
    "maintainer_can_modify",
)


def _simple_pull(pull: dict[str, Any]) -> dict[str, Any]:
    """The listing shape of a pull request (GitHub's "pull-request-simple")."""
    return {key: value for key, value in pull.items() if key not in _FULL_ONLY}


def comment_json(id_: int, body: str) -> dict[str, object]:
    return {"id": id_, "body": body, "user": {"login": "octo"}, "html_url": f"https://github.example/c/{id_}"}
