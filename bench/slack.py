"""The Slack bot under load: ``python -m bench.slack [--reps N] [--runs N] [--first N]``.

Measures, in one process against one Prefect test server (``prefect_test_harness``, SQLite):

1. **Slash-command ack latency** (p50/p99/max of the time to the HTTP 200) under 20 concurrent
   senders. The real bot (:func:`bot.server.create_web_app` under uvicorn on 127.0.0.1, a
   SQLite database migrated by ``storage.migrate.upgrade``, a recording fake Slack Web API from
   ``tests/fakes/slack.py`` on a ``FakeHTTP``) receives correctly signed ``/flow help`` (``--reps``
   per sender, default 20) and ``/flow run bench name=x`` (``--runs`` per sender, default 2)
   commands. Each request has its own ``trigger_id`` (so its own signature: the replay guard,
   keyed on signature and timestamp, drops nothing); each sender posts in its own channel. Two
   baselines get the same load in the same process: a Starlette route that only verifies the
   Slack signature and answers 200, and a bare Bolt ``AsyncApp`` whose ``/flow`` listener only
   calls ``ack()``; ratios are against both. The help rounds of the three servers take turns in
   cycles of 5 commands per sender. The senders run in a child process (``--load-child``: one
   ``httpx.AsyncClient`` each, requests back to back) so their CPU does not share the bot's
   event loop or GIL — as with Slack, which calls from elsewhere.
2. **Accepted triggers per second**: ``/flow run`` commands acknowledged per second over the 20
   senders while the runs they start execute in the background in the same process; then how
   long the backlog took to finish (every run started and ``runtime.running`` empty), the run
   rows' statuses, and how often the Prefect client retried after HTTP 503 meanwhile.
3. **Command to first node running**: ``--first`` sequential runs (default 10) of a three-node
   ``text.template`` workflow with a warm process, from sending the signed ``/flow run`` to the
   first node's ``NodeEvent`` "started" (a wrapper around ``switchboard.arun``, which the bot's
   runtime calls, adds a listener), with the stages in between and the first ``chat.update``
   that shows the node as no longer queued. Each run is preceded by a ``/flow help`` as the
   idle ack reference, and starts 1.5 s after the previous one ended, so the per-channel pacer
   (1 Slack write/s) is free.

4. **Acks while a run starts on the embedded default** (issue 11): a real ``switchboard bot``
   process with no PREFECT_API_URL and a fresh home (its embedded Prefect server migrates a new
   database first) gets a ``/flow run`` as soon as it answers, then a ``/flow help`` every
   100 ms from one sender until the run's message says completed, then ``--startup-idle``
   more as the idle baseline. Ack latencies are reported per phase — Prefect's server
   starting (``/healthz`` says ``starting``), the run starting and running, idle — with ratios
   to idle. Before issue 11 the bot started Prefect's server synchronously on its event loop:
   a help sent in that window waited for it (longer than Slack's 3 s).

Targets (issue 5): ack p99 <= 300 ms (Slack gives up at 3 s); first node <= 2 s with a warm
runner. Prints tables; never fails. About 3 minutes with the defaults on 2 cores;
``--startup-only`` runs section 4 alone.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("SWITCHBOARD_HOME", tempfile.mkdtemp(prefix="switchboard-bench-"))
for _var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_var, None)
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import switchboard  # noqa: E402, I001 - must come before prefect

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_sdk.signature import SignatureVerifier  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bot.runtime import BotRuntime  # noqa: E402
from bot.server import create_web_app  # noqa: E402
from flows.results import RunResult  # noqa: E402
from flows.events import NodeEvent  # noqa: E402
from storage.db import create_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.runs import RunStore  # noqa: E402
from storage.workflows import WorkflowStore  # noqa: E402
from switchboard.settings import Settings  # noqa: E402
from tests.helpers.polling import apoll_until  # noqa: E402
from tests.helpers.processes import free_port  # noqa: E402
from tests.fakes.http import FakeHTTP  # noqa: E402
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, slash_command  # noqa: E402

SENDERS = 20
HELP_CYCLE = 5
WORKFLOW: dict[str, Any] = {
    "name": "bench",
    "description": "three text.template nodes",
    "inputs": {"name": {"type": "string", "required": True}},
    "nodes": [
        {"id": "hello", "type": "text.template", "params": {"template": "Hello {{ inputs.name }}"}},
        {"id": "shout", "type": "text.template", "params": {"template": "{{ nodes.hello.output.text | upper }}"}},
        {"id": "done", "type": "text.template", "params": {"template": "{{ nodes.shout.output.text }}!"}},
    ],
}
FIRST_NODE = "hello"


def log(message: str) -> None:
    print(f"[slack {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 200 samples is the second largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --- the senders (a child process) --------------------------------------------------------


async def send_round(job: dict[str, Any]) -> dict[str, Any]:
    """``senders`` clients post ``per_sender`` signed commands each, back to back."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def sender(index: int, client: httpx.AsyncClient) -> None:
        for k in range(job["per_sender"]):
            headers, body = slash_command(
                job["text"],
                user=f"U{index:03d}",
                channel=f"C{job['tag'].upper()}{index:03d}",
                trigger_id=f"{job['tag']}-{index}-{k}",
                response_url=job["response_url"],
            )
            started = time.monotonic()
            try:
                response = await client.post(job["url"], headers=headers, content=body)
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            latencies.append(time.monotonic() - started)
            statuses[str(response.status_code)] += 1

    # Clients first: building one (its TLS context) takes tens of ms of CPU, which would
    # otherwise land inside the first requests' timings.
    clients = [httpx.AsyncClient(timeout=30) for _ in range(job["senders"])]
    started = time.monotonic()
    await asyncio.gather(*(sender(i, client) for i, client in enumerate(clients)))
    ended = time.monotonic()
    for client in clients:
        await client.aclose()
    return {"latencies": latencies, "statuses": dict(statuses), "started": started, "ended": ended}


def load_child() -> None:
    """Answer one JSON job per stdin line with one JSON result line on stdout."""
    for line in sys.stdin:
        if line.strip():
            result = asyncio.run(send_round(json.loads(line)))
            print(json.dumps(result), flush=True)


@dataclass
class Round:
    """One round of concurrent commands, as the senders saw it."""

    latencies: list[float]
    statuses: dict[str, int]
    started: float
    ended: float

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def per_second(self) -> float:
        return self.ok / (self.ended - self.started)

    def merge(self, other: Round) -> Round:
        """Two rounds as one sample (rates over the time spent sending)."""
        statuses = Counter(self.statuses) + Counter(other.statuses)
        return Round(
            self.latencies + other.latencies,
            dict(statuses),
            0.0,
            (self.ended - self.started) + (other.ended - other.started),
        )

    def ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


class Senders:
    """The child process that plays Slack's side (20 concurrent senders)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> Senders:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.slack",
            "--load-child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        return cls(process)

    async def round(
        self, url: str, text: str, per_sender: int, tag: str, response_url: str, senders: int = SENDERS
    ) -> Round:
        assert self.process.stdin is not None and self.process.stdout is not None
        job = {
            "url": url,
            "text": text,
            "senders": senders,
            "per_sender": per_sender,
            "tag": tag,
            "response_url": response_url,
        }
        self.process.stdin.write((json.dumps(job) + "\n").encode())
        await self.process.stdin.drain()
        answer = json.loads(await self.process.stdout.readline())
        return Round(**answer)

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        await self.process.wait()


# --- the bot process side -----------------------------------------------------------------


@dataclass
class TimedSlack(FakeSlack):
    """The recording fake Slack, also noting when each message write arrived (monotonic)."""

    writes: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        self.writes.append((time.monotonic(), "chat.postMessage", args))
        return super()._chat_postMessage(args)

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self.writes.append((time.monotonic(), "chat.update", args))
        return super()._chat_update(args)


@dataclass
class RunStamps:
    called: float
    run_started: float | None = None
    first_node: float | None = None
    finished: float | None = None


class RunTaps:
    """Notes when each run's events arrive, by wrapping ``switchboard.arun`` (which the bot's
    runtime calls through the module): one more listener before the bot's own."""

    def __init__(self) -> None:
        self.stamps: dict[str, RunStamps] = {}
        self._original: Callable[..., Awaitable[RunResult]] = switchboard.arun

    def install(self) -> None:
        original = self._original

        async def timed_arun(*args: Any, **kwargs: Any) -> RunResult:
            run_id = kwargs.get("run_id")
            if run_id is None:
                return await original(*args, **kwargs)
            stamps = self.stamps[run_id] = RunStamps(called=time.monotonic())

            def tap(event: NodeEvent) -> None:
                now = time.monotonic()
                if event.kind == "run_started" and stamps.run_started is None:
                    stamps.run_started = now
                elif event.kind == "started" and event.node_id == FIRST_NODE and stamps.first_node is None:
                    stamps.first_node = now

            kwargs["listeners"] = [tap, *kwargs.get("listeners", ())]
            try:
                return await original(*args, **kwargs)
            finally:
                stamps.finished = time.monotonic()

        switchboard.arun = timed_arun

    def remove(self) -> None:
        switchboard.arun = self._original  # type: ignore[assignment]


class RetryCounter(logging.Handler):
    """Counts the Prefect client's retries of HTTP 503 (SQLite "database is locked")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self._logger = logging.getLogger("prefect.client")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable status code 503" in record.getMessage():
            self.count += 1

    def __enter__(self) -> RetryCounter:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def signature_only_app() -> Starlette:
    """Baseline: verify the Slack signature, answer 200."""
    verifier = SignatureVerifier(SIGNING_SECRET)

    async def events(request: Request) -> Response:
        body = await request.body()
        return Response(status_code=200 if verifier.is_valid_request(body, request.headers) else 401)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


def bare_bolt_app(client: AsyncWebClient) -> Starlette:
    """Baseline: Bolt's request handling with a ``/flow`` listener that only acks."""
    bolt = AsyncApp(client=client, signing_secret=SIGNING_SECRET, process_before_response=False)

    @bolt.command("/flow")
    async def ack_only(ack: Callable[[], Awaitable[None]]) -> None:
        await ack()

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


async def serve(app: Starlette) -> Served:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await apoll_until(lambda: server.started, interval=0.01, message="the fake Slack app's server to listen")
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{port}/slack/events", server, task)


async def drain(runtime: BotRuntime, taps: RunTaps, launched: int, timeout: float = 600.0) -> float:
    """Wait until ``launched`` runs in all have started (the bot starts them after the ack)
    and every run the bot started has ended; returns how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        enough = len(taps.stamps) >= launched
        if enough and not runtime.running and all(s.finished is not None for s in taps.stamps.values()):
            break
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@dataclass
class Triggers:
    """What became of the ``/flow run`` round's runs."""

    backlog: int  # runs not finished when the last ack came
    finished_after: float  # seconds from the last ack until every run had ended
    ends: list[float]  # each run's end, seconds after the round's first command
    retries: int  # Prefect client retries after HTTP 503 meanwhile
    rows_added: int
    statuses: Counter[str]


@dataclass
class FirstNode:
    """Stages of one sequential run, seconds after the command was sent."""

    help_ack: float
    ack: float
    posted: float
    arun_called: float
    run_started: float
    first_node: float
    visible: float
    finished: float


def slack_stages(slack: TimedSlack, run_id: str, after: float) -> tuple[float | None, float | None]:
    """When the run's message was posted, and first updated with the first node past "queued"."""
    posted_at = None
    for at, method, args in list(slack.writes):
        blocks = args.get("blocks") or []
        if at < after or run_id not in json.dumps(blocks):
            continue
        if method == "chat.postMessage":
            posted_at = at
        elif method == "chat.update" and first_node_shown(blocks):
            return posted_at, at
    return posted_at, None


def first_node_shown(blocks: list[dict[str, Any]]) -> bool:
    for block in blocks:
        text = block.get("text")
        for line in str(text.get("text", "")).splitlines() if isinstance(text, dict) else []:
            if f"`{FIRST_NODE}`" in line:
                return ":white_circle:" not in line
    return False


async def first_node_runs(
    runtime: BotRuntime, taps: RunTaps, slack: TimedSlack, http: httpx.AsyncClient, url: str, count: int
) -> list[FirstNode]:
    results: list[FirstNode] = []
    for i in range(count):
        await asyncio.sleep(1.2)  # with the help and the pause below, the channel's pacer slot is free
        headers, body = slash_command(
            "help", channel="CFIRST", trigger_id=f"help-{i}", response_url=slack.response_url("first")
        )
        sent = time.monotonic()
        await http.post(url, headers=headers, content=body)  # the idle reference: same process, same moment
        help_ack = time.monotonic() - sent
        await asyncio.sleep(0.3)
        known = set(taps.stamps)
        headers, body = slash_command(
            "run bench name=first", channel="CFIRST", trigger_id=f"first-{i}", response_url=slack.response_url("first")
        )
        sent = time.monotonic()
        response = await http.post(url, headers=headers, content=body)
        acked = time.monotonic()
        if response.status_code != 200:
            log(f"first-node run {i}: HTTP {response.status_code}")
            continue
        while not set(taps.stamps) - known:
            await asyncio.sleep(0.005)
        (run_id,) = set(taps.stamps) - known
        await drain(runtime, taps, len(taps.stamps))
        await asyncio.sleep(0.05)
        stamps = taps.stamps[run_id]
        posted, visible = slack_stages(slack, run_id, sent)
        if stamps.run_started is None or stamps.first_node is None or stamps.finished is None or posted is None:
            log(f"first-node run {i}: incomplete stamps {stamps}")
            continue
        results.append(
            FirstNode(
                help_ack=help_ack,
                ack=acked - sent,
                posted=posted - sent,
                arun_called=stamps.called - sent,
                run_started=stamps.run_started - sent,
                first_node=stamps.first_node - sent,
                visible=(visible - sent) if visible is not None else math.nan,
                finished=stamps.finished - sent,
            )
        )
    return results


@dataclass
class StartupAcks:
    """Section 4: ``/flow help`` ack latencies of an embedded bot, by phase."""

    phases: dict[str, list[float]]
    prefect_ready_after: float  # seconds from the bot answering /healthz to Prefect ready
    run_done_after: float  # seconds from the /flow run to its message saying completed


async def startup_acks(idle_pings: int) -> StartupAcks:
    """Section 4 (see the module docstring)."""
    import subprocess

    home = Path(tempfile.mkdtemp(prefix="sb-bench-startup-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SWITCHBOARD_"))}
    env |= {"SWITCHBOARD_HOME": str(home), "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    definition = home / "bench.json"
    first_node = {"id": FIRST_NODE, "type": "text.template", "params": {"template": "hello"}}
    definition.write_text(json.dumps({"name": "bench", "nodes": [first_node]}))
    subprocess.run([sys.executable, "-m", "switchboard.cli", "apply", str(definition)], env=env, check=True)
    fake = FakeHTTP().start()
    slack = TimedSlack(fake)
    port = free_port()
    env |= {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SWITCHBOARD_SLACK_API_URL": slack.api_url,
    }
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "bot", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    phases: dict[str, list[float]] = {"Prefect server starting": [], "run starting and running": [], "idle": []}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:

            async def healthz() -> dict[str, Any] | None:
                try:
                    answer: dict[str, Any] = (await http.get("/healthz")).json()
                    return answer
                except httpx.HTTPError:
                    return None

            health = await apoll_until(healthz, timeout=120, message="the bot to answer /healthz")
            up = time.monotonic()
            headers, body = slash_command("run bench", channel="CSTART", trigger_id="start-run")
            run_sent = time.monotonic()
            await http.post("/slack/events", headers=headers, content=body)
            prefect_ready: float | None = None
            run_done: float | None = None
            pings = 0
            idle_left = idle_pings
            while idle_left > 0 and time.monotonic() - run_sent < 600:
                if prefect_ready is None and (await http.get("/healthz")).json().get("prefect") == "ready":
                    prefect_ready = time.monotonic()
                phase = (
                    "Prefect server starting"
                    if prefect_ready is None
                    else "run starting and running" if run_done is None else "idle"
                )  # fmt: skip
                headers, body = slash_command("help", channel="CSTART", trigger_id=f"ping-{pings}")
                pings += 1
                sent = time.monotonic()
                await http.post("/slack/events", headers=headers, content=body)
                phases[phase].append(time.monotonic() - sent)
                if phase == "idle":
                    idle_left -= 1
                messages = slack.channel_messages("CSTART")
                if run_done is None and messages and "completed" in json.dumps(messages[-1].blocks):
                    run_done = time.monotonic()
                await asyncio.sleep(0.1)
            log(f"startup: health {health}, {pings} pings")
    finally:
        bot.terminate()
        await bot.wait()
        fake.stop()
    return StartupAcks(
        phases,
        (prefect_ready - up) if prefect_ready else math.nan,
        (run_done - run_sent) if run_done else math.nan,
    )


def report_startup(startup: StartupAcks) -> None:
    print(
        f"4. /flow help acks while an embedded bot starts Prefect and its first run · one sender, every 100 ms · "
        f"Prefect ready {startup.prefect_ready_after:.1f} s after the bot answered; the run completed "
        f"{startup.run_done_after:.1f} s after /flow run"
    )
    header = (
        f"{'phase':<28} | {'acks':>4} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | "
        f"{'p50/idle':>8} | {'max/idle p50':>12}"
    )
    print(header)
    print("-" * len(header))
    idle = statistics.median(startup.phases["idle"]) if startup.phases["idle"] else math.nan
    for label, values in startup.phases.items():
        if not values:
            print(f"{label:<28} | {0:>4} | {'-':>7} | {'-':>7} | {'-':>7} | {'-':>8} | {'-':>12}")
            continue
        p50, p99, top = statistics.median(values), percentile(values, 99), max(values)
        print(
            f"{label:<28} | {len(values):>4} | {p50 * 1000:>7.1f} | {p99 * 1000:>7.1f} | {top * 1000:>7.1f} | "
            f"{p50 / idle:>7.1f}x | {top / idle:>11.1f}x"
        )
    worst = max((max(v) for v in startup.phases.values() if v), default=math.nan)
    verdict = "met" if worst < 3.0 else "MISSED"
    print(f"target: every ack well inside Slack's 3000 ms ({verdict}: max {worst * 1000:.0f} ms)")


def prefect_settings_line() -> str:
    from prefect.settings import get_current_settings

    current = get_current_settings()
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("PREFECT_"))
    return (
        f"Prefect {__import__('prefect').__version__}: API {current.api.url} (prefect_test_harness subprocess, "
        f"SQLite); logs to API: {current.logging.to_api.enabled}; env: {env}"
    )


async def main(reps: int, runs: int, first: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="sb-bench-slack-"))
    database_url = f"sqlite+aiosqlite:///{home / 'bot.db'}"
    os.environ["SWITCHBOARD_DATABASE_URL"] = database_url
    os.environ["SWITCHBOARD_FILES_DIR"] = str(home / "files")
    fake = FakeHTTP().start()
    slack = TimedSlack(fake)
    engine = create_engine(database_url)
    await upgrade(engine)
    await WorkflowStore(engine).apply(WORKFLOW, actor="bench")
    settings = Settings(
        home=home,
        database_url=database_url,
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_api_url=slack.api_url,
    )
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    runtime = BotRuntime(settings=settings, engine=engine, client=client)
    taps = RunTaps()
    taps.install()
    servers = {
        "signature": await serve(signature_only_app()),
        "bolt": await serve(bare_bolt_app(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))),
        "bot": await serve(create_web_app(runtime)),
    }
    senders = await Senders.start()
    response_url = slack.response_url("bench")
    rounds: dict[str, Round] = {}
    try:
        log("warm-up (Bolt's auth.test, imports, the first flow run) ...")
        for name in ("signature", "bolt", "bot"):
            await senders.round(servers[name].url, "help", 1, f"w{name[0]}", response_url)
        await senders.round(servers["bot"].url, "run bench name=warm", 1, "wr", response_url, senders=1)
        await drain(runtime, taps, 1)
        await asyncio.sleep(1.2)

        # The help rounds take turns in cycles of HELP_CYCLE commands per sender, so a slow
        # moment of the machine does not land on one server only.
        cycles = max(1, math.ceil(reps / HELP_CYCLE))
        help_plan = [
            ("signature-only Starlette route", "signature", "sh"),
            ("bare Bolt ack()", "bolt", "bh"),
            ("Switchboard /flow help", "bot", "h"),
        ]
        log(f"/flow help: {cycles} cycles x 3 servers x {SENDERS} senders x {HELP_CYCLE} ...")
        for cycle in range(cycles):
            for label, server, tag in help_plan:
                done = await senders.round(servers[server].url, "help", HELP_CYCLE, f"{tag}{cycle}", response_url)
                rounds[label] = rounds[label].merge(done) if label in rounds else done
                await asyncio.sleep(0.3)  # let /flow help's response_url posts finish
        for label, server, tag in (
            ("signature-only route, run load", "signature", "sr"),
            ("bare Bolt ack(), run load", "bolt", "br"),
        ):
            log(f"{label}: {SENDERS} senders x {runs} ...")
            rounds[label] = await senders.round(servers[server].url, "run bench name=x", runs, tag, response_url)
        label = "Switchboard /flow run bench"
        log(f"{label}: {SENDERS} senders x {runs} (runs execute in the background) ...")
        launched_before = len(taps.stamps)
        earlier = set(taps.stamps)
        before = len(await RunStore(engine).list(workflow="bench", limit=10_000))
        with RetryCounter() as retries:
            rounds[label] = await senders.round(servers["bot"].url, "run bench name=x", runs, "r", response_url)
            finished = sum(1 for stamps in taps.stamps.values() if stamps.finished is not None)
            backlog = launched_before + rounds[label].ok - finished
            drained = await drain(runtime, taps, launched_before + rounds[label].ok)
        finished_after = time.monotonic() - rounds[label].ended
        ends = [
            stamps.finished - rounds[label].started
            for run_id, stamps in taps.stamps.items()
            if run_id not in earlier and stamps.finished is not None
        ]
        log(f"backlog of {backlog} runs drained in {drained:.1f} s")
        records = await RunStore(engine).list(workflow="bench", limit=10_000)
        triggers = Triggers(
            backlog,
            finished_after,
            ends,
            retries.count,
            len(records) - before,
            Counter(record.status for record in records[: len(records) - before]),
        )

        log(f"command -> first node: {first} sequential runs ...")
        async with httpx.AsyncClient(timeout=30) as http:
            firsts = await first_node_runs(runtime, taps, slack, http, servers["bot"].url, first)
    finally:
        taps.remove()
        await senders.close()
        for served in servers.values():
            served.server.should_exit = True
            await served.task
        await engine.dispose()
        fake.stop()

    report(reps, runs, rounds, triggers, firsts)


def report(reps: int, runs: int, rounds: dict[str, Round], triggers: Triggers, firsts: list[FirstNode]) -> None:
    print()
    print(
        f"1. Slash-command ack latency · {SENDERS} concurrent senders (child process) · "
        f"{reps} help / {runs} run commands per sender"
    )
    header = (
        f"{'server / command':<32} | {'ok':>4} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | "
        f"{'req/s':>6} | {'p50/sig':>7} | {'p99/sig':>7} | {'p99/bolt':>8}"
    )
    print(header)
    groups = [
        ("signature-only Starlette route", "bare Bolt ack()", "Switchboard /flow help"),
        ("signature-only route, run load", "bare Bolt ack(), run load", "Switchboard /flow run bench"),
    ]
    for group in groups:
        print("-" * len(header))
        signature, bolt = rounds[group[0]], rounds[group[1]]
        for label in group:
            r = rounds[label]
            total = sum(r.statuses.values())
            ok = f"{r.ok}" if r.ok == total else f"{r.ok}/{total}"
            print(
                f"{label:<32} | {ok:>4} | {r.ms(50):>7.1f} | {r.ms(99):>7.1f} | {r.ms(100):>7.1f} | "
                f"{r.per_second:>6.0f} | {r.ms(50) / signature.ms(50):>6.1f}x | "
                f"{r.ms(99) / signature.ms(99):>6.1f}x | {r.ms(99) / bolt.ms(99):>7.1f}x"
            )
    run_round = rounds["Switchboard /flow run bench"]
    verdict = "met" if run_round.ms(99) <= 300 and rounds["Switchboard /flow help"].ms(99) <= 300 else "MISSED"
    print(f"target: p99 <= 300 ms ({verdict}); Slack's limit is 3000 ms")
    print()
    print("2. Accepted triggers")
    sending = run_round.ended - run_round.started
    print(
        f"/flow run: {run_round.ok} acknowledged in {sending:.2f} s = {run_round.per_second:.1f} triggers/s "
        f"(signature-only route under the same load: {rounds['signature-only route, run load'].per_second:.0f} req/s)"
    )
    shown = ", ".join(f"{k} {v}" for k, v in sorted(triggers.statuses.items()))
    print(
        f"runs not finished when the last ack came: {triggers.backlog}; all finished {triggers.finished_after:.1f} s "
        f"after it ({run_round.ok / (triggers.finished_after + sending):.1f} runs/s end to end); "
        f"run rows added {triggers.rows_added}, statuses: {shown}"
    )
    if triggers.ends:
        ends = triggers.ends
        alone = f"{statistics.median(f.finished for f in firsts):.1f} s" if firsts else "-"
        print(
            f"run end times after the first command: p50 {percentile(ends, 50):.1f} s, "
            f"p90 {percentile(ends, 90):.1f} s, max {max(ends):.1f} s (one run alone, section 3: {alone}); "
            f"Prefect client retries after HTTP 503 meanwhile: {triggers.retries}"
        )
    print()
    print(f"3. Command -> first node running · {len(firsts)} sequential runs, warm process, 3 text.template nodes")
    header = f"{'stage (s after the command was sent)':<44} | {'median ms':>9} | {'p95 ms':>7} | {'max ms':>7}"
    print(header)
    print("-" * len(header))
    stages = [
        ("(reference: ack of /flow help, idle)", "help_ack"),
        ("ack (HTTP 200)", "ack"),
        ("live message posted (chat.postMessage)", "posted"),
        ("switchboard.arun called", "arun_called"),
        ("Prefect flow run started (run_started)", "run_started"),
        ("first node started (NodeEvent started)", "first_node"),
        ("first node shown in Slack (chat.update)", "visible"),
        ("run finished (arun returned)", "finished"),
    ]
    for label, attr in stages:
        values = [getattr(f, attr) for f in firsts if not math.isnan(getattr(f, attr))]
        if not values:
            print(f"{label:<44} | {'-':>9} | {'-':>7} | {'-':>7}")
            continue
        print(
            f"{label:<44} | {statistics.median(values) * 1000:>9.0f} | {percentile(values, 95) * 1000:>7.0f} | "
            f"{max(values) * 1000:>7.0f}"
        )
    if firsts:
        p95 = percentile([f.first_node for f in firsts], 95)
        print(f"target: first node <= 2000 ms ({'met' if p95 <= 2.0 else 'MISSED'} at p95)")
    print()
    print(prefect_settings_line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20, help="/flow help commands per sender (default 20)")
    parser.add_argument("--runs", type=int, default=2, help="/flow run commands per sender (default 2)")
    parser.add_argument("--first", type=int, default=10, help="sequential runs for command -> first node")
    parser.add_argument("--startup-idle", type=int, default=30, help="idle /flow help pings in section 4")
    parser.add_argument("--startup-only", action="store_true", help="run section 4 only")
    parser.add_argument("--load-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        load_child()
        sys.exit(0)
    if not args.startup_only:
        from prefect.testing.utilities import prefect_test_harness

        print("[slack] starting a Prefect test server ...", file=sys.stderr)
        with prefect_test_harness(server_startup_timeout=120):
            asyncio.run(main(args.reps, args.runs, args.first))
        print()
    log("section 4: a bot process on the embedded default ...")
    report_startup(asyncio.run(startup_acks(args.startup_idle)))
