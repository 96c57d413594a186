"""The slash command (``/flow`` by default) and the run-inputs modal.

Every command is acknowledged at once (an empty 200, well inside Slack's 3 seconds); answers
and errors follow through the command's ``response_url`` as ephemeral messages that say what
to type instead. ``run`` posts the run's live message in the channel.

Who may see what (:class:`bot.permissions.Access`, one per request): ``list`` shows only the
workflows the user may read; ``describe`` and ``run`` of a workflow they may not read answer
as for an unknown name; ``status``, ``logs``, ``cancel`` and ``retry`` of a run they may not
read answer exactly as for a run that does not exist. Refusals are audited (``refused-…``).
The inputs form's submission is checked again like ``run``: its metadata comes back from
Slack, stale (permissions change while a form is open) or forged.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import connect
from bot.blocks import SECTION_LIMIT, escape, notice_modal
from bot.permissions import Access, approvers_of
from bot.runtime import BotRuntime, no_visible_run, workflow_of
from flows.model import NAME_PATTERN, InputError, InputSpec, Workflow
from nodes import safe_json
from switchboard.errors import WorkflowNotFoundError
from switchboard.workflows import StoredVersion

Respond = Callable[..., Awaitable[Any]]

MODAL_CALLBACK = "run_inputs"
LOG_LINES = 20
#: Slack keeps at most this many characters of a view's ``private_metadata``.
METADATA_LIMIT = 3000

HELP = """*{cmd}* runs and watches Switchboard workflows:
• `{cmd} list` — workflows, their latest version and last run
• `{cmd} describe NAME` — inputs, nodes, schedule and who may run it
• `{cmd} run NAME key=value "key2=two words"` — start a run (a form asks for missing inputs)
• `{cmd} status [RUN_ID|last]` — how a run is doing
• `{cmd} logs RUN_ID [NODE]` — the last log lines of a run (redacted)
• `{cmd} cancel RUN_ID` · `{cmd} retry RUN_ID` — stop a run, or resume a failed one
• `{cmd} connect PROVIDER [NAME]` — link your own account (github, gdrive, ...); your runs use it
• `{cmd} help` — this message"""


class CommandError(Exception):
    """A mistake in the command; the message says what to type instead."""


def parse_assignments(words: list[str]) -> dict[str, str]:
    """``key=value`` words (quoted as the shell does) into text inputs."""
    given: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise CommandError(f'`{escape(word)}` is not `key=value`; quote values with spaces: `"key=two words"`')
        given[key] = value
    return given


def register(app: AsyncApp, runtime: BotRuntime) -> None:
    """Attach the slash command and the modal's submission handler to ``app``."""
    command = runtime.settings.slack_command

    @app.command(command)
    async def on_command(
        ack: Callable[..., Awaitable[None]], body: dict[str, Any], respond: Respond, client: AsyncWebClient
    ) -> None:
        await ack()
        try:
            await dispatch(runtime, body, respond, client)
        except CommandError as exc:
            await respond(text=str(exc), response_type="ephemeral")

    @app.view(MODAL_CALLBACK)
    async def on_inputs(ack: Callable[..., Awaitable[None]], body: dict[str, Any], client: AsyncWebClient) -> None:
        user = body["user"]["id"]
        view = body.get("view") or {}
        try:
            form = read_form(view.get("private_metadata"))
        except FormError as exc:
            detail = {"via": "inputs-form", "reason": str(exc)[:300]}
            await runtime.audit_refusal(user, "run", "inputs-form", detail)
            text = f"This form cannot be used ({escape(str(exc))}). Type `{command} run NAME` again."
            await ack(response_action="update", view=notice_modal("Run", text))
            return
        stored, refusal = await submitted_version(runtime, runtime.access(user, client), form)
        if stored is None:
            await ack(response_action="update", view=notice_modal(f"Run {form.workflow}", refusal or ""))
            return
        workflow = workflow_of(stored)
        given = dict(form.given)
        given.update(_modal_values((view.get("state") or {}).get("values")))
        try:
            inputs = workflow.resolve_inputs(given, from_text=True)
        except InputError as exc:
            errors = {p.field.removeprefix("inputs."): p.message for p in exc.problems if p.field}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        team = (body.get("team") or {}).get("id")
        await runtime.start_run(stored, inputs, user=user, channel=form.channel, client=client, team=team)


class FormError(ValueError):
    """The inputs form's metadata is not what the bot wrote; the message says what is wrong."""


class FormMetadata(BaseModel):
    """What :func:`inputs_modal` keeps in the form's ``private_metadata``, as it must come back."""

    model_config = ConfigDict(extra="forbid", strict=True)

    workflow: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    version: Annotated[int, Field(ge=1)]
    channel: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,40}$")]
    given: Annotated[dict[Annotated[str, Field(max_length=100)], str], Field(max_length=100)] = Field(
        default_factory=dict
    )


def read_form(metadata: object) -> FormMetadata:
    """The form's metadata, bounded and validated; raises :class:`FormError` saying what is wrong."""
    if not isinstance(metadata, str) or not metadata:
        raise FormError("it carries no metadata")
    try:
        data = safe_json.loads(metadata, what="its metadata", max_bytes=METADATA_LIMIT, max_depth=2)
    except safe_json.UnsafeJSONError as exc:
        raise FormError(str(exc)) from None
    if not isinstance(data, dict):
        raise FormError("its metadata is not an object with `workflow`, `version`, `channel` and `given`")
    try:
        return FormMetadata.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise FormError(f"its metadata does not fit: {problems}") from None


async def submitted_version(
    runtime: BotRuntime, access: Access, form: FormMetadata
) -> tuple[StoredVersion | None, str | None]:
    """The version a submitted form runs, checked as ``run`` checks it (the latest permissions,
    the workflow not archived, the version still stored); else None and why not (audited)."""
    name, cmd = form.workflow, runtime.settings.slack_command
    latest = await runtime.policy(name)
    refusal: str | None = None
    stored: StoredVersion | None = None
    if latest is None or not await access.may_read(latest):
        refusal = f"No workflow named `{escape(name)}` that you can see."
    elif not await access.may_run(latest):
        refusal = may_not_run_text(latest)
    elif await is_archived(runtime, name):
        refusal = archived_text(name)
    else:
        try:
            stored = await runtime.core.workflows.get(name, form.version)
        except WorkflowNotFoundError:
            refusal = f"`{escape(name)}` v{form.version} is no longer stored: type `{cmd} run {name}` again."
    if refusal is not None:
        await runtime.audit_refusal(access.user, "run", name, {"via": "inputs-form", "version": form.version})
    return stored, refusal


def archived_text(name: str) -> str:
    return f"`{escape(name)}` is archived, so it cannot run (`switchboard apply` brings it back)."


async def is_archived(runtime: BotRuntime, name: str) -> bool:
    """Whether stored workflow ``name`` is archived (hidden from lists and runs)."""
    return any(s.name == name and s.archived for s in await runtime.core.workflows.list(include_archived=True))


async def dispatch(runtime: BotRuntime, body: dict[str, Any], respond: Respond, client: AsyncWebClient) -> None:
    cmd = runtime.settings.slack_command
    try:
        words = shlex.split(body.get("text") or "")
    except ValueError as exc:
        raise CommandError(f"could not read the command ({exc}); check the quotes") from None
    verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
    access = runtime.access(body["user_id"], client)
    if verb == "help":
        await respond(text=HELP.format(cmd=cmd), response_type="ephemeral")
    elif verb == "list":
        await respond(text=await list_text(runtime, access), response_type="ephemeral")
    elif verb == "describe":
        stored = await _readable(runtime, access, args, f"{cmd} describe NAME", action="read")
        await respond(text=describe_text(stored), response_type="ephemeral")
    elif verb == "run":
        await run_command(runtime, body, args, respond, client, access)
    elif verb == "status":
        await respond(text=await status_text(runtime, args[0] if args else "last", access), response_type="ephemeral")
    elif verb == "logs":
        if not 1 <= len(args) <= 2:
            raise CommandError(f"Usage: `{cmd} logs RUN_ID [NODE]`")
        await respond(
            text=await logs_text(runtime, args[0], args[1] if len(args) == 2 else None, access),
            response_type="ephemeral",
        )
    elif verb == "retry":
        run_id = _one(args, f"{cmd} retry RUN_ID")
        why_not = await runtime.retry(
            run_id, user=body["user_id"], channel=body["channel_id"], client=client, team=body.get("team_id")
        )
        await respond(
            text=why_not or f"Retrying run `{escape(run_id)}`: completed nodes are reused.", response_type="ephemeral"
        )
    elif verb == "connect":
        await connect.connect_command(runtime, body, args, respond)
    elif verb == "cancel":
        run_id = _one(args, f"{cmd} cancel RUN_ID")
        why_not = await runtime.cancel(run_id, user=body["user_id"], client=client)
        await respond(text=why_not or f"Cancelled run `{escape(run_id)}`.", response_type="ephemeral")
    else:
        raise CommandError(f"I don't know `{escape(verb)}`. Try `{cmd} help`.")


def _one(args: list[str], usage: str) -> str:
    if len(args) != 1:
        raise CommandError(f"Usage: `{usage}`")
    return args[0]


async def _readable(runtime: BotRuntime, access: Access, args: list[str], usage: str, *, action: str) -> StoredVersion:
    """The latest version of workflow ``args[0]`` if ``access`` may read it; else the same
    :class:`CommandError` as for an unknown name (a refusal audited as ``refused-<action>``)."""
    if not args:
        raise CommandError(f"Usage: `{usage}`")
    try:
        stored: StoredVersion | None = await runtime.core.workflows.get(args[0])
    except WorkflowNotFoundError:
        stored = None
    if stored is not None and await access.may_read(workflow_of(stored)):
        return stored
    if stored is not None:
        await runtime.audit_refusal(access.user, action, stored.name)
    names = [w.name for w in await runtime.core.workflows.list() if await access.may_read(await runtime.policy(w.name))]
    known = (
        ", ".join(f"`{n}`" for n in names) or "none that you can see (they are stored with `switchboard apply FILE`)"
    )
    raise CommandError(f"No workflow named `{escape(args[0])}`. Known: {known}")


async def list_text(runtime: BotRuntime, access: Access) -> str:
    """The workflows ``access`` may read: latest version, description, last run, schedule."""
    lines = []
    for summary in await runtime.core.workflows.list():
        stored = await runtime.core.workflows.get(summary.name)
        workflow = workflow_of(stored)
        if not await access.may_read(workflow):
            continue
        last = await runtime.core.runs.records(workflow=summary.name, limit=1)
        ran = f"last run {last[0].status} {last[0].started_at:%Y-%m-%d %H:%M}" if last else "never run"
        schedule = workflow.schedule
        when = f" · schedule {schedule.cron or f'every {schedule.interval:g}s'}" if schedule else ""
        description = f" — {escape(summary.description)}" if summary.description else ""
        lines.append(f"• *{escape(summary.name)}* v{summary.latest_version}{description} · {ran}{when}")
    # the same answer whether nothing is stored or nothing is readable: hidden ones stay hidden
    return "\n".join(lines) or "No workflows that you can see yet (they are stored with `switchboard apply FILE`)."


def _input_line(name: str, spec: InputSpec) -> str:
    need = "required" if spec.required and spec.default is None else f"default `{spec.default}`"
    choices = f", one of {spec.enum}" if spec.enum else ""
    about = f" — {escape(spec.description)}" if spec.description else ""
    return f"• `{escape(name)}` ({spec.type}, {need}{choices}){about}"


def describe_text(stored: StoredVersion) -> str:
    workflow = workflow_of(stored)
    lines = [
        f"*{escape(workflow.name)}* v{stored.version}"
        + (f" — {escape(workflow.description)}" if workflow.description else "")
    ]
    lines.append("*Inputs:*" if workflow.inputs else "*Inputs:* none")
    lines += [_input_line(name, spec) for name, spec in workflow.inputs.items()]
    lines.append("*Nodes:* " + ", ".join(f"`{n.id}` ({n.type})" for n in workflow.nodes))
    if workflow.schedule:
        s = workflow.schedule
        lines.append(f"*Schedule:* {s.cron or f'every {s.interval:g}s'} ({s.timezone})")
    permissions = workflow.permissions
    run_by = ", ".join(_mention(e) for e in permissions.run) if permissions and permissions.run else "everyone"
    approve_by = ", ".join(_mention(e) for e in permissions.approve) if permissions and permissions.approve else "-"
    readers = permissions.readers(approvers_of(workflow)) if permissions else None
    read_by = ", ".join(_mention(e) for e in readers) if readers else "everyone"
    lines.append(f"*May run:* {run_by} · *May approve:* {approve_by} · *May read:* {read_by}")
    return "\n".join(lines)


def _mention(entry: str) -> str:
    if entry.startswith("S"):
        return f"<!subteam^{entry}>"
    if entry.startswith(("C", "G")):
        return f"<#{entry}>"
    return f"<@{entry}>"


def may_not_run_text(workflow: Workflow) -> str:
    """The refusal for someone who may read ``workflow`` but not run it: who may."""
    allowed = workflow.permissions.run if workflow.permissions else []
    return f"You may not run `{escape(workflow.name)}`; ask one of: " + ", ".join(_mention(e) for e in allowed)


async def run_command(
    runtime: BotRuntime,
    body: dict[str, Any],
    args: list[str],
    respond: Respond,
    client: AsyncWebClient,
    access: Access,
) -> None:
    cmd = runtime.settings.slack_command
    stored = await _readable(runtime, access, args, f"{cmd} run NAME key=value ...", action="run")
    workflow = workflow_of(stored)
    user = body["user_id"]
    if not await access.may_run(workflow):
        await runtime.audit_refusal(user, "run", workflow.name)
        raise CommandError(may_not_run_text(workflow))
    if await is_archived(runtime, workflow.name):
        raise CommandError(archived_text(workflow.name))
    given = parse_assignments(args[1:])
    try:
        inputs = workflow.resolve_inputs(given, from_text=True)
    except InputError as exc:
        missing = [p.field.removeprefix("inputs.") for p in exc.problems if p.field and "missing" in p.message]
        others = [p for p in exc.problems if p.field and "missing" not in p.message]
        if missing and not others and body.get("trigger_id"):  # a mention has no form to open
            await client.views_open(
                trigger_id=body["trigger_id"], view=inputs_modal(workflow, stored, missing, given, body["channel_id"])
            )
            return
        problems = "\n".join(f"• `{escape(p.field or '')}`: {escape(p.message)}" for p in exc.problems)
        usage = " ".join(f"{name}=…" for name in workflow.inputs)
        raise CommandError(
            f"Those inputs do not fit `{escape(workflow.name)}`:\n{problems}\nType: `{cmd} run {workflow.name} {usage}`"
        ) from None
    await runtime.start_run(
        stored,
        inputs,
        user=user,
        channel=body["channel_id"],
        client=client,
        team=body.get("team_id"),
        thread_ts=body.get("thread_ts"),
    )


def inputs_modal(
    workflow: Workflow, stored: StoredVersion, missing: list[str], given: dict[str, str], channel: str
) -> dict[str, Any]:
    """A modal asking for the missing inputs, one field per input, typed by the input's type."""
    blocks = [_input_block(name, workflow.inputs[name]) for name in missing]
    meta = {"workflow": stored.name, "version": stored.version, "channel": channel, "given": given}
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "private_metadata": json.dumps(meta),
        "title": {"type": "plain_text", "text": f"Run {stored.name}"[:24]},
        "submit": {"type": "plain_text", "text": "Run"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def _input_block(name: str, spec: InputSpec) -> dict[str, Any]:
    element: dict[str, Any]
    if spec.enum:
        options = [{"text": {"type": "plain_text", "text": str(v)}, "value": str(v)} for v in spec.enum]
        element = {"type": "static_select", "action_id": "value", "options": options}
    elif spec.type == "boolean":
        options = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in ("true", "false")]
        element = {"type": "static_select", "action_id": "value", "options": options}
    elif spec.type in ("integer", "number"):
        element = {"type": "number_input", "action_id": "value", "is_decimal_allowed": spec.type == "number"}
    elif spec.type in ("object", "array"):
        element = {
            "type": "plain_text_input",
            "action_id": "value",
            "multiline": True,
            "placeholder": {"type": "plain_text", "text": "JSON"},
        }
    else:
        element = {"type": "plain_text_input", "action_id": "value"}
    block: dict[str, Any] = {
        "type": "input",
        "block_id": name,
        "label": {"type": "plain_text", "text": name},
        "element": element,
    }
    if spec.description:
        block["hint"] = {"type": "plain_text", "text": spec.description[:150]}
    return block


def _modal_values(values: object) -> dict[str, str]:
    """The submitted fields as text inputs (parsed by type like command-line inputs); anything
    not shaped like Slack's ``state.values`` is ignored."""
    given: dict[str, str] = {}
    if not isinstance(values, dict):
        return given
    for block_id, actions in values.items():
        state = actions.get("value") if isinstance(actions, dict) else None
        if not isinstance(state, dict):
            continue
        if state.get("type") == "static_select":
            selected = state.get("selected_option")
            if isinstance(selected, dict) and selected.get("value") is not None:
                given[str(block_id)] = str(selected["value"])
        elif state.get("value") not in (None, ""):
            given[str(block_id)] = str(state["value"])
    return given


async def logs_text(runtime: BotRuntime, run_id: str, node: str | None, access: Access) -> str:
    """The last log lines of a run (or of one node), redacted, as a code block."""
    record = await runtime.visible_run(run_id, access)
    if record is None:
        return f"{no_visible_run(run_id)} `{runtime.settings.slack_command} status last` shows your latest."
    if not record.flow_run_id:
        return f"Run `{record.id}` has no Prefect flow run (it never started)."
    lines = await runtime.core.runs.logs(record.flow_run_id, node=node, limit=LOG_LINES)
    if not lines:
        return f"No logs for run `{record.id}`" + (f" node `{escape(node)}`" if node else "") + " (yet)."
    shown = "\n".join(
        f"{line.at:%H:%M:%S} {line.level:<7} {line.node or '-':<12} {line.message}"[:300] for line in lines
    )
    title = f"Last {len(lines)} log lines of run `{record.id}`" + (f", node `{escape(node)}`" if node else "")
    return f"{title}:\n```{escape(shown)[:SECTION_LIMIT]}```"


async def status_text(runtime: BotRuntime, which: str, access: Access) -> str:
    """How run ``which`` is doing (``last``: the newest run ``access`` may read)."""
    if which == "last":
        record = await runtime.latest_visible_run(access)
        if record is None:
            return "No runs that you can see yet."
    else:
        record = await runtime.visible_run(which, access)
        if record is None:
            return f"{no_visible_run(which)} `{runtime.settings.slack_command} status last` shows your latest."
    took = f" in {(record.ended_at - record.started_at).total_seconds():.1f}s" if record.ended_at else ""
    error = f"\n*Error:* {escape(record.error)}" if record.error else ""
    return (
        f"Run `{record.id}` of *{escape(record.workflow)}* v{record.version}: *{record.status}*{took} "
        f"(started {record.started_at:%Y-%m-%d %H:%M:%S} UTC by {record.triggered_by or record.trigger}){error}"
    )
