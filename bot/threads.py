"""The live run message: one message per run, updated in place as nodes start, retry and end.

Slack accepts about one message a second per channel, so updates are coalesced: node events
only mark the view dirty, and one writer per run sends the latest state no sooner than
:data:`MIN_INTERVAL` after the channel's previous update. The final summary always goes out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import NodeLine, RunView, run_message
from flows.events import NodeEvent
from flows.results import RunResult

logger = logging.getLogger(__name__)

#: Seconds between two updates of messages in one channel (Slack's ~1 message/s/channel).
MIN_INTERVAL = 1.0


@dataclass
class ChannelPacer:
    """When each channel may next be written to (shared by every run the bot watches)."""

    interval: float = MIN_INTERVAL
    _next: dict[str, float] = field(default_factory=dict)

    def reserve(self, channel: str) -> float:
        """Seconds to wait before writing to ``channel``; reserves that slot."""
        now = time.monotonic()
        at = max(now, self._next.get(channel, 0.0))
        self._next[channel] = at + self.interval
        return at - now


@dataclass
class LiveThread:
    """A run's message in a channel, kept in step with the run."""

    client: AsyncWebClient
    pacer: ChannelPacer
    channel: str
    view: RunView
    ts: str | None = None
    #: Post the message as a reply in this thread (a run started by a mention replies to it).
    thread_ts: str | None = None
    updates_sent: int = 0
    #: Whether the last update reached Slack (after :meth:`finish`: whether the summary did).
    last_update_ok: bool = True
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _done: bool = False
    _writer: asyncio.Task[None] | None = None

    async def post(self) -> str:
        """Post the message (starting state) and start the writer; returns its ``ts``."""
        text, blocks = run_message(self.view)
        await asyncio.sleep(self.pacer.reserve(self.channel))
        if self.thread_ts:
            response = await self.client.chat_postMessage(
                channel=self.channel, text=text, blocks=blocks, thread_ts=self.thread_ts
            )
        else:
            response = await self.client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
        self.ts = str(response["ts"])
        self._writer = asyncio.create_task(self._write_loop(), name=f"slack-thread-{self.view.run_id}")
        return self.ts

    def on_event(self, event: NodeEvent) -> None:
        """A run listener (called on the run's event loop): fold the event into the view."""
        view = self.view
        if event.kind == "run_started":
            return
        line = view.nodes.setdefault(event.node_id, NodeLine())
        if event.kind == "started" and line.status in ("queued", "running"):
            line.status = "running"
        elif event.kind == "waiting":
            line.status = "waiting"
        elif event.kind == "tool":
            tool = event.request or {}
            line.tool_event(str(tool.get("tool", "?")), str(tool.get("status", "")))
        elif event.kind == "retrying":
            line.status, line.attempts = "retrying", max(line.attempts, event.attempt)
        elif event.kind == "finished" and event.result is not None:
            result = event.result
            line.status, line.attempts, line.duration_ms = result.status, result.attempts, result.duration_ms
            line.detail = view.node_detail(event.node_id, result, final=False)
        self._dirty.set()

    @property
    def root(self) -> str | None:
        """The ts replies about the run go under: the thread it was posted in, else its message
        (Slack threads have one level: a reply's replies belong to its parent)."""
        return self.thread_ts or self.ts

    async def finish(self, result: RunResult) -> None:
        """Show the summary (status, duration, node table, trimmed outputs) and stop the writer."""
        self.view.finish(result)
        await self._stop_and_flush()

    async def fail(self, status: str, error: str) -> None:
        """The run could not finish normally (crashed, could not start): say so."""
        self.view.status, self.view.error = status, error
        await self._stop_and_flush()

    async def _stop_and_flush(self) -> None:
        self._done = True
        self._dirty.set()
        if self._writer is not None:
            await self._writer
        else:
            await self._update()

    async def _write_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            done = self._done
            await self._update()
            if done:
                return

    async def _update(self) -> None:
        if self.ts is None:
            return
        await asyncio.sleep(self.pacer.reserve(self.channel))
        text, blocks = run_message(self.view)
        try:
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text, blocks=blocks)
            self.updates_sent += 1
            self.last_update_ok = True
        except Exception as exc:  # a lost update is not worth failing the run for
            self.last_update_ok = False
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
            logger.warning("updating run %s in %s failed: %s", self.view.run_id, self.channel, error)
