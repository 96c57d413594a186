"""Workflow definitions: the pydantic models for workflow files, and loading them.

A definition comes from YAML, JSON or a dict. Structural mistakes are reported all at once as
:class:`Problem` rows naming the node id and field; semantic checks (node types, params,
references, cycles) are the planner's job (:mod:`flows.plan`).

Definitions and run inputs are untrusted: a file is read with a size cap, decoded strictly,
parsed by bounded parsers (:mod:`flows.safe_yaml`, :mod:`nodes.safe_json`), and any data,
a dict given by a Python caller included, is walked within :mod:`flows.limits` before
pydantic sees it. Every refusal is a :class:`DefinitionError` naming what and where.
"""

from __future__ import annotations

import codecs
import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows import limits, safe_yaml
from flows.triggers import MAX_TRIGGERS, Trigger
from nodes import safe_json

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]
#: The most outputs a workflow may declare.
MAX_OUTPUTS = 100
#: An output's name: what a parent's templates and API clients read (``outputs.<name>``).
OutputName = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN, max_length=100)]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition or with run inputs."""

    message: str
    node: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = []
        if self.node:
            where.append(f"node '{self.node}'")
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "field": self.field, "message": self.message}


class DefinitionError(ValueError):
    """A workflow definition (or run inputs) has problems; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem], *, source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{head}{len(problems)} problem(s)\n{lines}")


class InputError(DefinitionError):
    """Run inputs do not match the workflow's declared inputs."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """One typed workflow input."""

    type: InputType = "string"
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        if self.default is not None:
            try:
                _coerce(self.default, self.type, from_text=False)
            except ValueError as exc:
                raise ValueError(f"default: {exc}") from None
            if self.enum is not None and self.default not in self.enum:
                raise ValueError(f"default {self.default!r} is not one of {self.enum}")
        return self


class ExponentialBackoff(_Strict):
    """``{exponential: 2, max: 60, jitter: 0.2}``: delays base·2^n seconds, capped, jittered."""

    exponential: float = Field(gt=0, description="Base delay in seconds (doubles each attempt).")
    max: float | None = Field(default=None, gt=0)
    jitter: float = Field(default=0.0, ge=0, le=1)

    def delays(self, retries: int) -> list[float]:
        cap = self.max if self.max is not None else math.inf
        return [min(cap, self.exponential * 2**n) for n in range(max(retries, 1))]


class CacheSpec(_Strict):
    """Reuse a node's output: ``ttl`` seconds; ``key`` a template (default: type+params)."""

    ttl: float | None = Field(default=None, gt=0)
    key: str | None = None


class RateLimitSpec(_Strict):
    """At most ``per_second`` requests a second across every node, run and worker sharing the
    node's credential (see ``flows/rate_limits.py``)."""

    per_second: float = Field(gt=0, le=10_000)


class NodeDef(_Strict):
    """One node of a workflow."""

    id: Annotated[str, Field(pattern=NODE_ID_PATTERN, max_length=64)]
    type: str
    type_version: int | None = Field(default=None, ge=1, alias="version")
    name: str | None = None
    description: str | None = None
    credential: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    needs: list[str] = Field(default_factory=list)
    retries: int = Field(default=0, ge=0, le=50)
    retry_delay: float | list[float] | ExponentialBackoff | None = None
    timeout: float | None = Field(default=None, gt=0)
    cache: CacheSpec | None = None
    on_error: Literal["fail", "continue"] = "fail"
    for_each: Any = None
    concurrency: int | None = Field(default=None, ge=1, le=1000)
    rate_limit: RateLimitSpec | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("retry_delay")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value] if isinstance(value, int | float) else []
        if any(v < 0 for v in values):
            raise ValueError("retry delays must be >= 0 seconds")
        return value

    @field_validator("concurrency")
    @classmethod
    def _only_with_for_each(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("for_each") is None:
            raise ValueError("`concurrency` only applies to a node with `for_each`")
        return value

    def retry_delays(self) -> tuple[list[float] | float, float | None]:
        """Prefect's ``retry_delay_seconds`` and ``retry_jitter_factor`` for this node."""
        delay = self.retry_delay
        if isinstance(delay, ExponentialBackoff):
            return delay.delays(self.retries), delay.jitter or None
        if delay is None:
            return 0.0, None
        return delay, None


class Schedule(_Strict):
    cron: str | None = None
    interval: float | None = Field(default=None, gt=0)
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a schedule needs exactly one of `cron` or `interval`")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)") from None
        return value


class Permissions(_Strict):
    """Who may do what with a workflow in Slack; each entry a user (``U…``/``W…``), user group
    (``S…``) or channel (``C…``/``G…``) id. Admins may always do everything.

    * ``run``: start runs, retry and cancel them (empty: everyone). Running implies reading.
    * ``approve``: answer its approval steps (empty: the node's ``approvers``, else admins).
    * ``read``: see its runs, logs and definition (``status``, ``logs``, ``describe``,
      ``list``). Unset: the ``run`` list; both unset: everyone. Approvers may always read
      what they are asked to approve.
    """

    run: list[str] = Field(default_factory=list)
    approve: list[str] = Field(default_factory=list)
    read: list[str] = Field(default_factory=list)

    def readers(self, approvers: list[str] | None = None) -> list[str] | None:
        """The entries that may read the workflow: ``read``, ``run``, ``approve`` and
        ``approvers`` (the ids its approval nodes name); None (everyone) when neither ``read``
        nor ``run`` lists anyone."""
        if not self.read and not self.run:
            return None
        entries = [*self.read, *self.run, *self.approve, *(approvers or [])]
        return list(dict.fromkeys(entries))


class BudgetSpec(_Strict):
    """The most a run may spend on model calls (see :mod:`flows.usage`): ``usd`` by the price
    table, ``tokens`` counted as the providers report them; a call that would pass either is
    refused before it is made and the run fails."""

    usd: float | None = Field(default=None, gt=0, le=1_000_000)
    tokens: int | None = Field(default=None, gt=0, le=10**12)

    @model_validator(mode="after")
    def _one_bound(self) -> BudgetSpec:
        if self.usd is None and self.tokens is None:
            raise ValueError("a budget sets usd, tokens or both (e.g. budget: {usd: 0.50})")
        return self


class Notify(_Strict):
    channel: str


class Workflow(_Strict):
    """A whole workflow definition."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=100)]
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    schedule: Schedule | None = None
    #: What may start a run over HTTP (``POST /hooks/<name>``): GitHub deliveries, other
    #: signed webhooks; each maps the event to the inputs (:mod:`flows.triggers`).
    triggers: list[Trigger] = Field(default_factory=list, max_length=MAX_TRIGGERS)
    permissions: Permissions | None = None
    notify: Notify | None = None
    #: A stored workflow started when a run of this one fails, with input ``failure``.
    on_failure: Annotated[str | None, Field(pattern=NAME_PATTERN, max_length=100)] = None
    tags: list[str] = Field(default_factory=list)
    #: What a run of the workflow returns: names -> values or templates over its inputs and
    #: nodes (``{{ nodes.x.output.y }}``), rendered once every node has finished.
    outputs: dict[OutputName, Any] = Field(default_factory=dict, max_length=MAX_OUTPUTS)
    #: The most a run may spend on model calls (its sub-workflows' calls included).
    budget: BudgetSpec | None = None
    #: Where else the workflow is offered: ``mcp`` lists it as a tool of Switchboard's MCP
    #: server (``switchboard mcp``, ``/mcp`` on the bot).
    expose: list[Literal["mcp"]] = Field(default_factory=list, max_length=5)
    nodes: list[NodeDef] = Field(min_length=1)

    def node(self, node_id: str) -> NodeDef:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def inputs_schema(self) -> dict[str, Any]:
        """The declared inputs as a JSON Schema object (what an agent's model or an MCP client fills in)."""
        properties: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            prop: dict[str, Any] = {"type": spec.type}
            if spec.description:
                prop["description"] = spec.description
            if spec.enum:
                prop["enum"] = list(spec.enum)
            if spec.default is not None:
                prop["default"] = spec.default
            properties[name] = prop
        required = [name for name, spec in self.inputs.items() if spec.required and spec.default is None]
        return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}

    def to_dict(self) -> dict[str, Any]:
        """The definition as plain data (round-trips through :func:`load_definition`)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)

    def resolve_inputs(self, given: Mapping[str, Any], *, from_text: bool = False) -> dict[str, Any]:
        """Validate ``given`` against the declared inputs; fill defaults.

        With ``from_text`` every value is a string to parse by its declared type (CLI, Slack).
        Raises :class:`InputError` listing every problem.
        """
        problems: list[Problem] = []
        resolved: dict[str, Any] = {}
        for key in given:
            if key not in self.inputs:
                known = ", ".join(sorted(self.inputs)) or "none"
                problems.append(Problem(f"unknown input (declared inputs: {known})", field=f"inputs.{key}"))
        for key, spec in self.inputs.items():
            if key not in given or given[key] is None:
                if spec.default is not None:
                    resolved[key] = copy.deepcopy(spec.default)
                elif spec.required:
                    problems.append(Problem(f"required {spec.type} input is missing", field=f"inputs.{key}"))
                else:
                    resolved[key] = None
                continue
            try:
                value = _coerce(given[key], spec.type, from_text)
            except ValueError as exc:
                problems.append(Problem(str(exc), field=f"inputs.{key}"))
                continue
            if spec.enum is not None and value not in spec.enum:
                problems.append(Problem(f"{value!r} is not one of {spec.enum}", field=f"inputs.{key}"))
                continue
            resolved[key] = value
        if problems:
            raise InputError(problems, source=f"inputs of workflow '{self.name}'")
        return resolved


_TEXT_TRUE = {"true", "yes", "on", "1"}
_TEXT_FALSE = {"false", "no", "off", "0"}
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.I)


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never echo a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number_from_text(text: str, original: str, type_: InputType) -> int | float:
    pattern = _INTEGER_TEXT if type_ == "integer" else _NUMBER_TEXT
    if not pattern.fullmatch(text):  # ASCII digits only: int() would take "١٢٣" and "1_000"
        raise ValueError(f"expected {type_}, got {_shown(original)}")
    digits = sum(char.isdigit() for char in text)
    if digits > limits.MAX_INT_DIGITS:
        raise ValueError(f"expected {type_}, got a number of {digits:,} digits (at most {limits.MAX_INT_DIGITS})")
    if type_ == "integer" or not any(c in text for c in ".eEnNiI"):
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"expected {type_}, got {_shown(original)} (not a finite number)")
    return value


def _coerce(value: Any, type_: InputType, from_text: bool) -> Any:
    """``value`` as an input of ``type_`` (parsed from text with ``from_text``), within the bounds.

    Raises ValueError with a message that says what is wrong and never echoes a long value.
    """
    if from_text and isinstance(value, str):
        text = value.strip()
        if type_ in ("integer", "number"):
            return _number_from_text(text, value, type_)
        if type_ == "boolean":
            if text.lower() in _TEXT_TRUE:
                return True
            if text.lower() in _TEXT_FALSE:
                return False
            raise ValueError(f"expected {type_}, got {_shown(value)}")
        if type_ in ("object", "array"):
            try:
                value = safe_json.loads(
                    text,
                    what=f"the {type_} input",
                    max_depth=limits.MAX_DEPTH,
                    max_int_digits=limits.MAX_INT_DIGITS,
                )
            except safe_json.UnsafeJSONError as exc:
                raise ValueError(str(exc)) from None
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    if not checks[type_](value):
        raise ValueError(f"expected {type_}, got {type(value).__name__} {_shown(value)}")
    try:
        limits.check_data(value, max_values=limits.MAX_INPUT_VALUES, max_text=limits.MAX_INPUT_TEXT)
    except limits.LimitError as exc:
        where = f" (at {_dotted(exc.path)})" if exc.path else ""
        raise ValueError(f"the {type_} input {exc.message}{where}") from None
    return value


def _dotted(path: tuple[str | int, ...], most: int = 12) -> str:
    """A data path as ``a.b[0].c``, cut after ``most`` parts (a cycle's path is endless)."""
    text = ""
    for part in path[:most]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text + (".…" if len(path) > most else "")


def _loc_to_problem(raw: Mapping[str, Any], loc: tuple[Any, ...], message: str) -> Problem:
    nodes = raw.get("nodes")
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int) and isinstance(nodes, list):
        index = loc[1]
        entry = nodes[index] if index < len(nodes) else None
        node_id = entry.get("id") if isinstance(entry, dict) else None
        field = _dotted(loc[2:]) or None
        return Problem(message, node=str(node_id) if node_id else f"#{index + 1}", field=field)
    return Problem(message, field=_dotted(loc) or None)


def parse_definition(raw: Any, *, source: str | None = None) -> Workflow:
    """Validate a definition given as plain data; raises :class:`DefinitionError`."""
    if not isinstance(raw, Mapping):
        raise DefinitionError([Problem(f"a workflow must be a mapping, got {type(raw).__name__}")], source=source)
    try:
        limits.check_data(raw)
    except limits.LimitError as exc:
        raise DefinitionError(
            [_loc_to_problem(raw, exc.path, f"the definition {exc.message}")], source=source
        ) from None
    try:
        return Workflow.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
            # Unions report one error per member; keep messages readable and unique.
            loc = tuple(p for p in loc if p not in ("float", "list[float]", "ExponentialBackoff", "constrained-float"))
            problems.append(_loc_to_problem(raw, loc, err["msg"].removeprefix("Value error, ")))
        unique = list(dict.fromkeys(problems))
        raise DefinitionError(unique, source=source) from exc


def _read_file(path: Path) -> bytes:
    """The file's bytes, at most :data:`~flows.limits.MAX_DEFINITION_BYTES` of them."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DefinitionError([Problem(f"cannot read workflow file: {reason}")], source=str(path)) from exc
    if len(data) > limits.MAX_DEFINITION_BYTES:
        raise DefinitionError(
            [
                Problem(
                    f"the file is larger than {limits.MAX_DEFINITION_BYTES:,} bytes, the most a workflow file may be"
                )
            ],
            source=str(path),
        )
    return data


def _line_column(data: bytes | str, offset: int) -> str:
    newline = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    column = offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return f"line {line}, column {column}"


def _decode(data: bytes, label: str) -> str:
    """Text from a file's bytes: UTF-8 (a byte-order mark is fine), or UTF-16 with its byte-order
    mark (what Windows tools write). Anything else is refused, naming where it stops being text."""

    def refuse(message: str) -> DefinitionError:
        return DefinitionError([Problem(message)], source=label)

    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise refuse("the file is UTF-32 text; save it as UTF-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")  # the byte-order mark says which order; strict
        except UnicodeDecodeError as exc:
            raise refuse(
                f"the file starts like UTF-16 text but byte {exc.start} is not UTF-16 ({exc.reason})"
            ) from None
    head = data[:200]
    if len(head) >= 4 and max(head[0::2].count(0), head[1::2].count(0)) * 4 >= len(head):
        raise refuse("the file looks like UTF-16 text without a byte-order mark; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(
            f"{_line_column(data, exc.start)}: the file is not UTF-8 text (byte 0x{data[exc.start]:02X} "
            f"at offset {exc.start}); save it as UTF-8"
        ) from None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> Problem:
    """One Problem for a YAML error: where (line, column), then what."""
    if isinstance(exc, yaml.reader.ReaderError):
        located = text.encode("utf-8", "surrogatepass") if safe_yaml.POSITIONS_IN_BYTES else text
        if not isinstance(exc.character, int):
            return Problem(f"not valid YAML: {exc.reason}")
        return Problem(
            f"{_line_column(located, exc.position)}: not valid YAML: the character U+{exc.character:04X} is not "
            "allowed (write control characters as escapes in a double-quoted string)"
        )
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        if isinstance(exc, safe_yaml.RefusedYAML):
            return Problem(f"{where}: {exc.problem}")
        if (exc.problem or "").startswith("exceeded maximum nesting depth"):  # libyaml's own bound (1000), met first
            return Problem(f"{where}: the YAML nests deeper than {limits.MAX_DEPTH} levels")
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context} on line {exc.context_mark.line + 1})"
        return Problem(f"{where}: not valid YAML: {exc.problem}{context}")
    return Problem(f"not valid YAML: {exc}")


def _parse_text(text: str, label: str) -> Any:
    """Plain data from definition text: JSON for a ``.json`` file, else YAML."""
    if label.endswith(".json"):
        try:
            return safe_json.loads(
                text,
                what="the file",
                max_bytes=limits.MAX_DEFINITION_BYTES,
                max_depth=limits.MAX_DEPTH,
                max_int_digits=limits.MAX_INT_DIGITS,
            )
        except safe_json.UnsafeJSONError as exc:
            raise DefinitionError([Problem(str(exc))], source=label) from None
    try:
        return safe_yaml.load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError([_yaml_problem(exc, text)], source=label) from None


def load_definition(source: str | Path | Mapping[str, Any] | Workflow) -> Workflow:
    """Load a workflow from a YAML/JSON file path, a YAML/JSON string, a dict, or a Workflow.

    Raises :class:`DefinitionError` for anything that is not a valid definition within the
    bounds of :mod:`flows.limits` (size, depth, values, digits), never another exception.
    """
    if isinstance(source, Workflow):
        return source
    if isinstance(source, Mapping):
        return parse_definition(source)
    path = Path(source)
    if isinstance(source, Path) or (
        len(str(source)) < 4096 and "\n" not in str(source) and path.suffix in (".yaml", ".yml", ".json")
    ):
        label = str(path)
        text = _decode(_read_file(path), label)
    else:
        text, label = str(source), "<string>"
        if (
            len(text) > limits.MAX_DEFINITION_BYTES
            or len(text.encode("utf-8", "surrogatepass")) > limits.MAX_DEFINITION_BYTES
        ):
            raise DefinitionError(
                [
                    Problem(
                        f"the text is larger than {limits.MAX_DEFINITION_BYTES:,} bytes, the most a definition may be"
                    )
                ],
                source=label,
            )
    return parse_definition(_parse_text(text, label), source=label)
