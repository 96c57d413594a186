"""Model tokens and what they cost: the price table, each run's meter and its budget.

Every model call a node makes is told to its run's :class:`Meter` (through
``NodeContext.before_model_call`` and ``NodeContext.record_usage``; the ``ai.*`` transports
do it), failed attempts and agent tool loops included, so a run's ``usage`` is what it spent,
not what its final outputs happen to mention. A sub-workflow's meter reports to its parent's,
so a parent's usage includes its children's, and a parent's budget holds them too.

Cost comes from a :class:`PriceTable`: USD per million prompt (input) and completion (output)
tokens per model. :data:`DEFAULT_PRICES` ships list prices; an operator overrides or extends
them with a file (``SWITCHBOARD_PRICES``, YAML or JSON: ``{model: {input: N, output: N}}``). A
model is priced by its own name, else by the longest listed name it extends with ``-`` (a dated
snapshot ``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``), else after a provider prefix
(``openai/gpt-4o``); a model with no price shows its tokens and "no price".

A workflow's ``budget: {usd: N, tokens: N}`` is checked before every model call: the call is
refused (:class:`~nodes.errors.BudgetExceeded`, and the run fails with that error) when what the
run has spent plus the call's prompt, estimated from its text, would pass either bound. Calls
already in flight when another one spends the rest finish and are counted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flows import safe_yaml
from flows.model import BudgetSpec
from nodes.errors import BudgetExceeded

#: The largest price file read (a table of thousands of models fits in far less).
MAX_PRICE_FILE_BYTES = 256 * 1024
#: The most models a price table lists.
MAX_PRICED_MODELS = 5_000
#: The longest model name priced or counted (longer names are cut, never stored whole).
MAX_MODEL_NAME = 200
#: The most distinct models one run counts separately (the rest count as ``(other)``).
MAX_MODELS_PER_RUN = 100
_OTHER = "(other)"


class PriceError(ValueError):
    """A price table (file or mapping) is not valid; the message names the model and field."""


@dataclass(frozen=True)
class Price:
    """USD per million tokens: ``input`` for prompt tokens, ``output`` for completion tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """What ``prompt_tokens`` in and ``completion_tokens`` out cost, in USD."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


class PriceTable:
    """Prices by model name (see the module docstring for how a name finds its price)."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        # Longest first, so a dated snapshot finds its own family before a shorter one.
        self._prefixes = sorted(self._prices, key=len, reverse=True)

    def __len__(self) -> int:
        return len(self._prices)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def items(self) -> Iterable[tuple[str, Price]]:
        return self._prices.items()

    def price_of(self, model: str) -> Price | None:
        """The price of ``model``, or None when the table has none for it."""
        for name in (model, model.rsplit("/", 1)[-1]) if "/" in model else (model,):
            if name in self._prices:
                return self._prices[name]
            for known in self._prefixes:
                if name.startswith(f"{known}-"):
                    return self._prices[known]
        return None

    def merged(self, overrides: PriceTable) -> PriceTable:
        """This table with ``overrides``'s prices replacing or adding to its own."""
        return PriceTable({**self._prices, **overrides._prices})

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "prices") -> PriceTable:
        """A table from ``{model: {input: N, output: N}}`` (USD per million tokens, >= 0)."""
        if not isinstance(data, Mapping):
            raise PriceError(f"{source}: expected a mapping of model names to {{input, output}} prices")
        if len(data) > MAX_PRICED_MODELS:
            raise PriceError(f"{source}: {len(data)} models, more than the {MAX_PRICED_MODELS} a table may list")
        prices: dict[str, Price] = {}
        for model, entry in data.items():
            if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_NAME:
                raise PriceError(f"{source}: model names are non-empty strings of at most {MAX_MODEL_NAME} characters")
            where = f"{source}: {model}"
            if not isinstance(entry, Mapping):
                raise PriceError(f"{where}: expected {{input: USD per 1M tokens, output: USD per 1M tokens}}")
            unknown = sorted(set(map(str, entry)) - {"input", "output"})
            if unknown:
                raise PriceError(f"{where}: unknown field(s) {', '.join(unknown)} (use input and output)")
            rates: dict[str, float] = {}
            for side in ("input", "output"):
                value = entry.get(side, 0 if side == "output" else None)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise PriceError(f"{where}.{side}: expected a number of USD per million tokens")
                if not math.isfinite(value) or value < 0 or value > 1_000_000:
                    raise PriceError(f"{where}.{side}: {value} is not a price (0 to 1,000,000 USD per 1M tokens)")
                rates[side] = float(value)
            prices[model.strip()] = Price(input=rates["input"], output=rates["output"])
        return cls(prices)

    @classmethod
    def from_file(cls, path: Path) -> PriceTable:
        """A table from a YAML or JSON file (bounded: :data:`MAX_PRICE_FILE_BYTES`)."""
        try:
            size = path.stat().st_size
            if size > MAX_PRICE_FILE_BYTES:
                raise PriceError(f"{path}: {size} bytes, more than the {MAX_PRICE_FILE_BYTES} a price file may have")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceError(f"{path}: cannot read the price file ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise PriceError(f"{path}: the price file is not UTF-8 text") from None
        try:
            data = safe_yaml.load(text)
        except yaml.YAMLError as exc:
            raise PriceError(f"{path}: not valid YAML or JSON: {exc}") from None
        return cls.from_mapping(data, source=str(path))


#: List prices in USD per million tokens (input, output), as OpenAI published them.
DEFAULT_PRICES = PriceTable(
    {
        name: Price(input=rates[0], output=rates[1])
        for name, rates in {
            "gpt-5": (1.25, 10.0),
            "gpt-5-mini": (0.25, 2.0),
            "gpt-5-nano": (0.05, 0.40),
            "gpt-4.1": (2.0, 8.0),
            "gpt-4.1-mini": (0.40, 1.60),
            "gpt-4.1-nano": (0.10, 0.40),
            "gpt-4o": (2.50, 10.0),
            "gpt-4o-mini": (0.15, 0.60),
            "o3": (2.0, 8.0),
            "o3-mini": (1.10, 4.40),
            "o4-mini": (1.10, 4.40),
            "text-embedding-3-small": (0.02, 0.0),
            "text-embedding-3-large": (0.13, 0.0),
            "text-embedding-ada-002": (0.10, 0.0),
        }.items()
    }
)


def load_prices(path: Path | None) -> PriceTable:
    """The default prices, overridden and extended by the file at ``path`` when given."""
    return DEFAULT_PRICES if path is None else DEFAULT_PRICES.merged(PriceTable.from_file(path))


@dataclass
class _Counts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0


def _count(value: Any) -> int:
    """A token count a provider reported, or 0 when it is not a sane one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return min(value, 10**12)


class Meter:
    """What one run has spent on models, by model, and its budget (thread-safe: nodes that
    call SDKs in threads record from there)."""

    def __init__(
        self, prices: PriceTable = DEFAULT_PRICES, budget: BudgetSpec | None = None, *, parent: Meter | None = None
    ) -> None:
        self.prices = prices
        self.budget = budget
        self.parent = parent
        self._models: dict[str, _Counts] = {}
        self._lock = threading.Lock()
        #: Why the budget refused a call, once it has (the run fails with this).
        self.refused: str | None = None

    def before_call(self, model: str, *, prompt_tokens: int) -> None:
        """Refuse (raise :class:`BudgetExceeded`) a call to ``model`` with about
        ``prompt_tokens`` of prompt when it would take this run, or a parent, past its budget."""
        meter: Meter | None = self
        while meter is not None:
            meter._check(_model_key(model), prompt_tokens)
            meter = meter.parent

    def record(self, model: str, usage: Mapping[str, Any]) -> None:
        """Count one call to ``model`` with the ``usage`` it reported (here and in the parents)."""
        prompt = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("completion_tokens"))
        total = _count(usage.get("total_tokens")) or prompt + completion
        key = _model_key(model)
        meter: Meter | None = self
        while meter is not None:
            meter._add(key, prompt, completion, total)
            meter = meter.parent

    def _add(self, model: str, prompt: int, completion: int, total: int) -> None:
        with self._lock:
            if model not in self._models and len(self._models) >= MAX_MODELS_PER_RUN:
                model = _OTHER
            counts = self._models.setdefault(model, _Counts())
            counts.prompt_tokens += prompt
            counts.completion_tokens += completion
            counts.total_tokens += total
            counts.calls += 1

    def _check(self, model: str, prompt_tokens: int) -> None:
        budget = self.budget
        if budget is None:
            return
        with self._lock:
            if self.refused is not None:
                raise BudgetExceeded(self.refused)
            spent_tokens = sum(c.total_tokens for c in self._models.values())
            problem: str | None = None
            if budget.tokens is not None and spent_tokens + prompt_tokens > budget.tokens:
                problem = (
                    f"{spent_tokens:,} tokens spent, and the next call to {model} (about {prompt_tokens:,} "
                    f"prompt tokens) would pass the run's budget of {budget.tokens:,} tokens"
                )
            elif budget.usd is not None:
                price = self.prices.price_of(model)
                if price is None:
                    problem = (
                        f"the run has a budget of {format_usd(budget.usd)}, but model {model} has no price "
                        "to hold it to (add it to the price table, SWITCHBOARD_PRICES, or budget tokens instead)"
                    )
                else:
                    spent = self._cost_locked()[0]
                    next_cost = price.cost(prompt_tokens, 0)
                    if spent + next_cost > budget.usd:
                        problem = (
                            f"{format_usd(spent)} spent, and the next call to {model} (about "
                            f"{format_usd(next_cost)} of prompt) would pass the run's budget of "
                            f"{format_usd(budget.usd)}"
                        )
            if problem is not None:
                self.refused = f"budget exceeded: {problem}"
                raise BudgetExceeded(self.refused)

    def _cost_locked(self) -> tuple[float, list[str]]:
        cost, unpriced = 0.0, []
        for model, counts in self._models.items():
            price = self.prices.price_of(model)
            if price is None:
                unpriced.append(model)
            else:
                cost += price.cost(counts.prompt_tokens, counts.completion_tokens)
        return cost, unpriced

    def summary(self) -> dict[str, Any]:
        """The run result's ``usage``: ``{}`` when no model was called, else ``{prompt_tokens,
        completion_tokens, total_tokens, calls, cost_usd, by_model: {model: {... cost_usd}}}``
        with ``unpriced: [models]`` when some model has no price (``cost_usd`` then sums the
        priced ones; None when none is priced) and ``budget`` when the workflow set one."""
        with self._lock:
            if not self._models:
                return {}
            by_model: dict[str, dict[str, Any]] = {}
            for model, counts in sorted(self._models.items()):
                price = self.prices.price_of(model)
                by_model[model] = {
                    "prompt_tokens": counts.prompt_tokens,
                    "completion_tokens": counts.completion_tokens,
                    "total_tokens": counts.total_tokens,
                    "calls": counts.calls,
                    "cost_usd": round(price.cost(counts.prompt_tokens, counts.completion_tokens), 6) if price else None,
                }
            cost, unpriced = self._cost_locked()
        summary: dict[str, Any] = {
            key: sum(entry[key] for entry in by_model.values())
            for key in ("prompt_tokens", "completion_tokens", "total_tokens", "calls")
        }
        summary["cost_usd"] = round(cost, 6) if len(unpriced) < len(by_model) else None
        if unpriced:
            summary["unpriced"] = sorted(unpriced)
        summary["by_model"] = by_model
        if self.budget is not None:
            summary["budget"] = {
                k: v for k, v in (("usd", self.budget.usd), ("tokens", self.budget.tokens)) if v is not None
            }
        return summary


def _model_key(model: str) -> str:
    name = model.strip() if isinstance(model, str) else ""
    return (name or "(unknown)")[:MAX_MODEL_NAME]


def format_usd(amount: float | None) -> str:
    """``$1.50``, ``$0.0123``: cents from ten cents up, four significant digits below, "no price" for None."""
    if amount is None:
        return "no price"
    if amount == 0:
        return "$0"
    if amount >= 0.1:
        return f"${amount:,.2f}"
    return f"${amount:.4g}" if amount >= 0.0001 else "<$0.0001"


def describe(usage: Mapping[str, Any]) -> str:
    """One line for people: ``1,234 tokens (1,000 prompt, 234 completion) · $0.0012`` (Slack,
    the artifact, the CLI); empty when nothing was spent."""
    if not usage or (not usage.get("calls") and not usage.get("total_tokens")):
        return ""
    total = usage.get("total_tokens", 0)
    line = (
        f"{total:,} tokens ({usage.get('prompt_tokens', 0):,} prompt, {usage.get('completion_tokens', 0):,} completion)"
    )
    cost = usage.get("cost_usd")
    unpriced = usage.get("unpriced") or []
    if cost is None:
        line += " · no price"
    else:
        line += f" · {format_usd(cost)}"
        if unpriced:
            line += f" + no price for {', '.join(map(str, unpriced[:3]))}{'…' if len(unpriced) > 3 else ''}"
    return line
