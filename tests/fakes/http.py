"""A scriptable HTTP server on 127.0.0.1 that records every request (real sockets, no mocks).

>>> fake = FakeHTTP().start()
>>> fake.script("GET", "/flaky", Reply(503), Reply(200, {"ok": True}))
>>> fake.url("/flaky")
'http://127.0.0.1:PORT/flaky'

By default it speaks HTTP/1.0 and closes every connection after one response; with
``keep_alive=True`` it speaks HTTP/1.1 and keeps connections open, and counts them
(:attr:`FakeHTTP.connections_opened`, :attr:`FakeHTTP.open_connections`, ``Recorded.peer``) so a
test can see whether a client reuses them. A :class:`Reply` with ``stream`` sends a body of any
size without building it, and :attr:`FakeHTTP.sent_bytes` says how much of it got out before
the client hung up.

Every provider fake injects faults the same way, through :meth:`FakeHTTP.fail_next`:

>>> fake.fail_next(429, headers={"Retry-After": "3"})              # the next request, any path
>>> fake.fail_next(Reply(503), times=2, method="GET", path="/v0/")  # the next two GETs under /v0/
>>> fake.fail_next(200, hold=release)       # answer only once ``release`` (an Event) is set
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    #: The Content-Type of a bytes body (file content), sent as is.
    content_type: str = "application/octet-stream"
    #: Makes the body's chunks as they are sent (instead of ``body``): any size, never held whole.
    stream: Callable[[], Iterable[bytes]] | None = None
    #: The Content-Length announced for ``stream``; None sends it chunked (HTTP/1.1).
    length: int | None = None

    def encode(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", "text/plain"
        if isinstance(self.body, bytes):
            return self.body, self.content_type
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    #: The client's ``(address, port)``: one per TCP connection.
    peer: tuple[str, int] = ("", 0)

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Recorded], Reply]


@dataclass
class Fault:
    """A reply served instead of the normal answer to the next ``times`` matching requests."""

    reply: Reply
    times: int
    method: str | None
    #: A path prefix, or several.
    path: str | tuple[str, ...] | None
    #: ``path`` is a prefix (True) or the whole path.
    prefix: bool = True
    #: The server thread waits for this event before answering (a provider that hangs).
    hold: threading.Event | None = None

    def matches(self, request: Recorded) -> bool:
        if self.method is not None and self.method != request.method:
            return False
        if self.path is None:
            return True
        paths = (self.path,) if isinstance(self.path, str) else self.path
        return any(request.path.startswith(p) if self.prefix else request.path == p for p in paths)


class FakeHTTP:
    """Routes ``(method, path)`` to a script of replies (the last reply repeats) or to a
    handler function; a path with neither answers 404.

    :meth:`require_token` makes it behave like a provider checking bearer tokens: requests
    without one of the accepted tokens get 401 before any script or handler sees them.
    """

    def __init__(self, *, keep_alive: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        self.keep_alive = keep_alive
        self.host, self.port = host, port
        self.requests: list[Recorded] = []
        #: TCP connections accepted so far, and those still open.
        self.connections_opened = 0
        self.open_connections = 0
        #: Body bytes of ``stream`` replies written to the socket, by path.
        self.sent_bytes: dict[str, int] = {}
        self._scripts: dict[tuple[str, str], deque[Reply]] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._prefix_handlers: list[tuple[str, str, Handler]] = []
        self._tokens: set[str] | None = None
        self._open_paths: set[str] = set()
        self._faults: list[Fault] = []
        #: Called with every request as it arrives (on the server thread), faults included.
        self.observers: list[Callable[[Recorded], None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeHTTP:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's algorithm
                # and the client's delayed ACK hold every kept-alive response for ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with fake._lock:
                    fake.connections_opened += 1
                    fake.open_connections += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with fake._lock:
                        fake.open_connections -= 1

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                reply = fake._record_and_pick(
                    Recorded(
                        method=self.command,
                        path=parts.path,
                        query=parse_qs(parts.query),
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                        at=time.monotonic(),
                        peer=(str(self.client_address[0]), int(self.client_address[1])),
                    )
                )
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.stream is not None:
                    self._stream(parts.path, reply)
                    return
                payload, content_type = reply.encode()
                self.send_response(reply.status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _stream(self, path: str, reply: Reply) -> None:
                assert reply.stream is not None
                chunked = reply.length is None
                if chunked:
                    self.protocol_version = "HTTP/1.1"  # chunked framing needs an HTTP/1.1 status line
                self.close_connection = True
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                if chunked:
                    self.send_header("transfer-encoding", "chunked")
                else:
                    self.send_header("content-length", str(reply.length))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    for chunk in reply.stream():
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                        with fake._lock:
                            fake.sent_bytes[path] = fake.sent_bytes.get(path, 0) + len(chunk)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up: what it refused is what was not sent
                    return

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default backlog of 5 resets bursts of parallel nodes

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that gave up (a timeout test, a cancelled run) closed its end while
                # the fake still wrote: expected, not worth a traceback in the test output.
                if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
                    return
                super().handle_error(request, client_address)

        self._server = Server((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def server_port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def wait_closed(self, timeout: float = 10.0) -> int:
        """Wait until every connection to the server is closed (at most ``timeout`` seconds,
        to stop a hang); returns how many are still open."""
        return self.wait_closed_but(0, timeout)

    def wait_closed_but(self, remaining: int, timeout: float = 10.0) -> int:
        """Wait until at most ``remaining`` connections are open (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while self.open_connections > remaining and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, method: str, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[(method.upper(), path)] = deque(replies)

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Answer ``(method, path)`` — or every path under ``path`` with ``prefix`` — by
        calling ``handler(request)`` (on the server thread)."""
        with self._lock:
            if prefix:
                self._prefix_handlers.append((method.upper(), path, handler))
            else:
                self._handlers[(method.upper(), path)] = handler

    def require_token(self, *tokens: str, open_paths: tuple[str, ...] = ()) -> None:
        """Accept only ``Authorization: Bearer <token>`` for one of ``tokens`` (add more with
        :meth:`accept_token`); ``open_paths`` (e.g. a token endpoint) need none."""
        with self._lock:
            self._tokens = set(tokens)
            self._open_paths = set(open_paths)

    def accept_token(self, token: str, *, only: bool = False) -> None:
        """Start accepting ``token`` (``only``: and stop accepting every other one)."""
        with self._lock:
            self._tokens = {token} if only or self._tokens is None else {*self._tokens, token}

    def fail_next(
        self,
        status: int | Reply,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | tuple[str, ...] | None = None,
        prefix: bool = True,
        hold: threading.Event | None = None,
    ) -> None:
        """Answer the next ``times`` requests (of ``method``, under ``path`` — or at exactly
        ``path`` with ``prefix=False`` — when given) that pass the token check with this reply
        instead of the scripted or routed one; faults queued earlier are served first.
        ``hold``: wait for the event before answering."""
        reply = status if isinstance(status, Reply) else Reply(status, body, headers or {})
        with self._lock:
            self._faults.append(Fault(reply, times, method.upper() if method else None, path, prefix, hold))

    def clear_faults(self, path: str | None = None) -> None:
        """Drop the faults still queued (those given ``path``, or all)."""
        with self._lock:
            self._faults = [f for f in self._faults if path is not None and f.path != path]

    def _take_fault(self, recorded: Recorded) -> Fault | None:
        for fault in self._faults:
            if fault.matches(recorded):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def calls(self, path: str, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def _record_and_pick(self, recorded: Recorded) -> Reply:
        for observe in list(self.observers):
            observe(recorded)
        with self._lock:
            self.requests.append(recorded)
            if self._tokens is not None and recorded.path not in self._open_paths:
                _scheme, _, presented = recorded.headers.get("authorization", "").partition(" ")
                if presented.strip() not in self._tokens:  # "Bearer X", or GitHub's "token X"
                    return Reply(401, {"message": "Bad credentials", "error": {"message": "invalid token"}})
            fault = self._take_fault(recorded)
        if fault is not None:
            if fault.hold is not None:
                fault.hold.wait(timeout=60)  # bounded: a test that forgets to release must not hang
            return fault.reply
        with self._lock:
            script = self._scripts.get((recorded.method, recorded.path))
            handler = self._handlers.get((recorded.method, recorded.path))
            if handler is None and not script:
                handler = next(
                    (h for m, p, h in self._prefix_handlers if m == recorded.method and recorded.path.startswith(p)),
                    None,
                )
            if script:
                return script.popleft() if len(script) > 1 else script[0]
        if handler is not None:
            return handler(recorded)
        return Reply(404, {"message": f"no route {recorded.method} {recorded.path}"})
