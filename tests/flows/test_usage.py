"""Tokens and cost on every run, and budgets: workflows with ai.* nodes against the fake OpenAI
server over real HTTP, run by the real runner on a Prefect test server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.usage import DEFAULT_PRICES, PriceError, PriceTable, describe, format_usd
from switchboard.client import Client
from switchboard.settings import Settings
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion, embeddings

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def _resolver(ai: FakeOpenAI) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": "sk-test", "base_url": ai.base_url}

    return resolve


def _chat(node_id: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "ai.chat", "credential": "llm", "params": {"prompt": "hi", "model": model}, **extra}


async def _run(ai: FakeOpenAI, definition: dict[str, Any], settings: Settings | None = None) -> Any:
    client = Client(settings or Settings())
    return await client.runs.run(definition, credential_resolver=_resolver(ai), record=False)


async def test_a_run_sums_tokens_and_cost_per_model(ai: FakeOpenAI) -> None:
    # The server answers with dated snapshots, priced as their families; one model has no price.
    ai.reply(
        completion("one", model="gpt-4o-mini-2024-07-18", prompt_tokens=1_000, completion_tokens=500),
        completion("two", model="gpt-4o-mini-2024-07-18", prompt_tokens=2_000, completion_tokens=100),
        completion("three", model="acme-local-llm", prompt_tokens=10, completion_tokens=5),
    )
    ai.reply_embeddings(embeddings([[0.1, 0.2]], model="text-embedding-3-small", prompt_tokens=50_000))
    definition = {
        "name": "usage-sum",
        "nodes": [
            _chat("a", "gpt-4o-mini"),
            _chat("b", "gpt-4o-mini", needs=["a"]),
            _chat("c", "acme-local-llm", needs=["b"]),
            {
                "id": "vectors",
                "type": "ai.embed",
                "credential": "llm",
                "params": {"texts": ["x"], "model": "text-embedding-3-small"},
            },
        ],
    }
    result = await _run(ai, definition)
    assert result.status == "completed", result.error

    mini = (3_000 * 0.15 + 600 * 0.60) / 1e6
    embed = 50_000 * 0.02 / 1e6
    usage = result.usage
    assert usage["by_model"] == {
        "acme-local-llm": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "calls": 1,
            "cost_usd": None,
        },
        "gpt-4o-mini-2024-07-18": {
            "prompt_tokens": 3_000,
            "completion_tokens": 600,
            "total_tokens": 3_600,
            "calls": 2,
            "cost_usd": round(mini, 6),
        },
        "text-embedding-3-small": {
            "prompt_tokens": 50_000,
            "completion_tokens": 0,
            "total_tokens": 50_000,
            "calls": 1,
            "cost_usd": round(embed, 6),
        },
    }
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"], usage["calls"]) == (
        53_010,
        605,
        53_615,
        4,
    )
    assert usage["cost_usd"] == round(mini + embed, 6)
    assert usage["unpriced"] == ["acme-local-llm"]
    assert result.to_dict()["usage"] == usage
    assert describe(usage) == "53,615 tokens (53,010 prompt, 605 completion) · $0.00181 + no price for acme-local-llm"


async def test_a_run_without_model_calls_has_empty_usage(ai: FakeOpenAI) -> None:
    result = await _run(ai, {"name": "no-ai", "nodes": [{"id": "x", "type": "core.set", "params": {"values": {}}}]})
    assert result.status == "completed", result.error
    assert result.usage == {}
    assert describe(result.usage) == ""


async def test_failed_attempts_count_too(ai: FakeOpenAI) -> None:
    """A reply the node rejects still cost tokens: they are in the run's usage."""
    ai.reply(completion("not json", model="gpt-4o", prompt_tokens=40, completion_tokens=4))
    node = _chat("a", "gpt-4o")
    node["params"]["json_schema"] = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    result = await _run(ai, {"name": "usage-failed", "nodes": [node]})
    assert result.status == "failed"
    assert result.usage["total_tokens"] == 44 and result.usage["calls"] == 1


async def test_a_token_budget_refuses_the_call_that_would_pass_it(ai: FakeOpenAI) -> None:
    ai.reply(completion("first", prompt_tokens=11, completion_tokens=7), completion("never sent"))
    definition = {
        "name": "budget-tokens",
        "budget": {"tokens": 20},
        "nodes": [
            _chat("a", "fake-model"),
            # on_error: continue does not carry a run past its budget.
            _chat("b", "fake-model", needs=["a"], on_error="continue", retries=3, retry_delay=0),
            _chat("c", "fake-model", needs=["b"]),
        ],
    }
    result = await _run(ai, definition)
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("budget exceeded: 18 tokens spent")
    assert "budget of 20 tokens" in result.error
    assert (result.nodes["b"].status, result.nodes["b"].attempts) == ("failed", 1), "a refusal is not retried"
    assert result.nodes["b"].error == result.error
    assert result.nodes["c"].status == "failed", "later calls are refused too"
    assert len(ai.requests()) == 1, "no request was sent past the budget"
    assert result.usage["budget"] == {"tokens": 20}
    assert result.usage["total_tokens"] == 18


async def test_a_usd_budget_is_priced_by_the_table(ai: FakeOpenAI) -> None:
    # 100k prompt and 1k completion tokens of gpt-4o cost $0.26, past the budget: the next call is refused.
    ai.reply(completion("big", model="gpt-4o", prompt_tokens=100_000, completion_tokens=1_000))
    definition = {
        "name": "budget-usd",
        "budget": {"usd": 0.2},
        "nodes": [_chat("a", "gpt-4o"), _chat("b", "gpt-4o", needs=["a"])],
    }
    result = await _run(ai, definition)
    assert result.status == "failed"
    assert result.error == (
        "budget exceeded: $0.26 spent, and the next call to gpt-4o (about <$0.0001 of prompt) would pass the "
        "run's budget of $0.20"
    )
    assert len(ai.requests()) == 1


async def test_a_usd_budget_refuses_a_model_without_a_price(ai: FakeOpenAI) -> None:
    result = await _run(ai, {"name": "budget-unpriced", "budget": {"usd": 1}, "nodes": [_chat("a", "acme-llm")]})
    assert result.status == "failed"
    assert result.error is not None and "model acme-llm has no price" in result.error
    assert ai.requests() == []


async def test_a_price_file_overrides_and_extends_the_defaults(ai: FakeOpenAI, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("acme-llm: {input: 1.0, output: 2.0}\ngpt-4o: {input: 10, output: 20}\n")
    ai.reply(
        completion("a", model="acme-llm", prompt_tokens=1_000_000, completion_tokens=1_000_000),
        completion("b", model="gpt-4o", prompt_tokens=1_000_000, completion_tokens=0),
    )
    definition = {"name": "priced", "nodes": [_chat("a", "acme-llm"), _chat("b", "gpt-4o", needs=["a"])]}
    result = await _run(ai, definition, Settings(prices=prices))
    assert result.status == "completed", result.error
    assert result.usage["by_model"]["acme-llm"]["cost_usd"] == 3.0
    assert result.usage["by_model"]["gpt-4o"]["cost_usd"] == 10.0
    assert result.usage["cost_usd"] == 13.0 and "unpriced" not in result.usage


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- gpt-4o\n", "expected a mapping of model names"),
        ("gpt-4o: 3\n", "gpt-4o: expected {input: USD per 1M tokens"),
        ("gpt-4o: {input: cheap}\n", "gpt-4o.input: expected a number"),
        ("gpt-4o: {input: -1}\n", "gpt-4o.input: -1 is not a price"),
        ("gpt-4o: {input: 1, outptu: 2}\n", "gpt-4o: unknown field(s) outptu"),
        ("gpt-4o: {input: 1\n", "not valid YAML or JSON"),
    ],
)
def test_a_bad_price_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    with pytest.raises(PriceError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")):
        Settings(prices=prices).price_table()


def test_a_run_with_a_bad_price_file_is_refused_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from switchboard.cli import app

    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-4o: {input: 1, output: lots}\n")
    monkeypatch.setenv("SWITCHBOARD_PRICES", str(prices))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    definition = tmp_path / "one.yaml"
    definition.write_text("name: one\nnodes: [{id: x, type: core.set, params: {values: {a: 1}}}]\n")
    outcome = CliRunner().invoke(app, ["run", str(definition)])
    assert outcome.exit_code == 2, outcome.output
    assert f"{prices}: gpt-4o.output: expected a number of USD per million tokens" in outcome.output
    assert "Traceback" not in outcome.output


def test_a_huge_price_file_is_refused_unread(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text("{" + " " * 300_000 + "}")
    with pytest.raises(PriceError, match="more than the 262144 a price file may have"):
        PriceTable.from_file(prices)


def test_models_find_their_price_by_family_and_provider_prefix() -> None:
    assert DEFAULT_PRICES.price_of("gpt-4o-mini-2024-07-18") == DEFAULT_PRICES.price_of("gpt-4o-mini")
    assert DEFAULT_PRICES.price_of("gpt-4o-2024-08-06") == DEFAULT_PRICES.price_of("gpt-4o")
    assert DEFAULT_PRICES.price_of("openai/gpt-5-nano") == DEFAULT_PRICES.price_of("gpt-5-nano")
    assert DEFAULT_PRICES.price_of("gpt-4o-mini") != DEFAULT_PRICES.price_of("gpt-4o")
    assert DEFAULT_PRICES.price_of("gpt-4") is None and DEFAULT_PRICES.price_of("o3x") is None
    assert [format_usd(v) for v in (None, 0, 0.00001, 0.0123456, 1234.5)] == [
        "no price",
        "$0",
        "<$0.0001",
        "$0.01235",
        "$1,234.50",
    ]


def test_a_budget_needs_a_bound(ai: FakeOpenAI) -> None:
    from flows.model import DefinitionError, load_definition

    with pytest.raises(DefinitionError) as raised:
        load_definition({"name": "x", "budget": {}, "nodes": [_chat("a", "m")]})
    assert "a budget sets usd, tokens or both" in str(raised.value.problems)
    with pytest.raises(DefinitionError) as raised:
        load_definition({"name": "x", "budget": {"usd": -1}, "nodes": [_chat("a", "m")]})
    assert "budget.usd" in str(raised.value.problems)


async def test_hostile_usage_counts_are_not_trusted(ai: FakeOpenAI) -> None:
    """Negative, non-integer or absurd counts from a provider count as nothing (never a credit)
    or as the most one call may report."""
    body = completion("ok").body
    body["usage"] = {"prompt_tokens": -5, "completion_tokens": 10**15, "total_tokens": -1}
    ai.reply(Reply(200, body))
    result = await _run(ai, {"name": "hostile-usage", "nodes": [_chat("a", "fake-model")]})
    assert result.status == "completed", result.error
    assert (result.usage["prompt_tokens"], result.usage["completion_tokens"]) == (0, 10**12)
    assert result.usage["total_tokens"] == 10**12 and result.usage["calls"] == 1
