"""Slack's Socket Mode side: a WebSocket server on 127.0.0.1 (aiohttp, in the test's event loop).

``FakeSlack.apps.connections.open`` answers with this server's URL. On each connection the
fake sends Slack's ``hello``; tests then push envelopes as Slack documents them and get back
the ack the client sent (``{"envelope_id": ..., "payload"?: ...}``).

>>> socket = await FakeSocketMode(slack).start()      # sets slack.socket_url
>>> await socket.wait_connected()
>>> ack = await socket.send_command("help", response_url=slack.response_url("help"))
>>> ack["envelope_id"]
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.slack import FakeSlack, slash_command

APP_ID = "A0APP"


@dataclass
class Connection:
    """One WebSocket session the client opened (``closed`` once either side ends it)."""

    number: int
    query: dict[str, str]
    socket: web.WebSocketResponse
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class FakeSocketMode:
    """The WebSocket end of Socket Mode: sends envelopes, records what the client sends back."""

    slack: FakeSlack
    #: Every JSON message the client sent (acks), oldest first.
    received: list[dict[str, Any]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    _pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    _port: int = 0

    async def start(self) -> FakeSocketMode:
        """Listen on a free port and point the fake Slack's ``apps.connections.open`` here."""
        app = web.Application()
        app.router.add_get("/link/", self._session)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self.slack.socket_url = f"ws://127.0.0.1:{self._port}/link/?ticket=fake-ticket&app_id={APP_ID}"
        return self

    async def stop(self) -> None:
        for connection in self.connections:
            await connection.socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed.is_set()]

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """Wait until ``count`` connections were opened in all; returns the newest open one."""

        def ready() -> bool:
            return len(self.connections) >= count and bool(self.open_connections)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        return self.open_connections[-1]

    # --- envelopes, as Slack sends them ----------------------------------------------------

    async def send_envelope(
        self, type_: str, payload: dict[str, Any], *, accepts_response_payload: bool, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send one envelope on the newest open connection and return the client's ack."""
        connection = await self.wait_connected(timeout=timeout)
        envelope_id = f"env-{next(self._ids)}"
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = acked
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type_,
            "accepts_response_payload": accepts_response_payload,
        }
        await connection.socket.send_str(json.dumps(envelope))
        try:
            return await asyncio.wait_for(acked, timeout)
        finally:
            self._pending.pop(envelope_id, None)

    async def send_command(
        self,
        text: str,
        *,
        command: str = "/flow",
        user: str = "U1",
        channel: str = "C1",
        response_url: str = "http://127.0.0.1:1/responses/none",
        trigger_id: str = "trigger-1",
    ) -> dict[str, Any]:
        """A ``slash_commands`` envelope: the command's fields as a JSON object (not form-encoded)."""
        _, body = slash_command(
            text, command=command, user=user, channel=channel, response_url=response_url, trigger_id=trigger_id
        )
        fields: dict[str, Any] = dict(parse_qsl(body.decode()))
        fields["is_enterprise_install"] = "false"
        return await self.send_envelope("slash_commands", fields, accepts_response_payload=True)

    async def send_interactive(
        self, payload: dict[str, Any], *, accepts_response_payload: bool | None = None
    ) -> dict[str, Any]:
        """An ``interactive`` envelope (block_actions, view_submission...): the payload as a JSON object."""
        accepts = (
            payload.get("type") == "view_submission" if accepts_response_payload is None else accepts_response_payload
        )
        return await self.send_envelope("interactive", payload, accepts_response_payload=accepts)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's warning that this connection is going away; clients reconnect with a new URL."""
        connection = await self.wait_connected()
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}}
        await connection.socket.send_str(json.dumps(message))

    # --- the server side ------------------------------------------------------------------

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        connection = Connection(len(self.connections) + 1, dict(request.query), socket)
        hello = {
            "type": "hello",
            "num_connections": len(self.open_connections) + 1,
            "debug_info": {"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": request.query.get("app_id", APP_ID)},
        }
        await socket.send_str(json.dumps(hello))
        async with self._changed:
            self.connections.append(connection)
            self._changed.notify_all()
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                self.received.append(data)
                waiter = self._pending.get(str(data.get("envelope_id")))
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
        finally:
            connection.closed.set()
            async with self._changed:
                self._changed.notify_all()
        return socket
