"""text.regex against hostile patterns and text: a time bound that interrupts the match, the
match off the event loop, and caps on text, pattern, matches and captured text.

A catastrophic pattern holds the GIL for as long as it backtracks when the engine does not
release it, so a test that provokes one in this process could hang the whole test run;
those tests run the node or the CLI in a child process with a timeout to stop a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from nodes.errors import NodeConfigError
from tests.nodes.context import call_node

ROOT = Path(__file__).resolve().parents[2]
#: The issue's pattern and text (exponential in Python's re; the regex module copes with it).
ISSUE_PATTERN, ISSUE_TEXT = r"^(a+)+$", "a" * 49 + "b"
#: Exponential in every backtracking engine.
SLOW_PATTERN = r"^(a|a)+$"

_CHILD = """
import asyncio, json, sys, time
from nodes.errors import NodeError
from tests.nodes.context import call_node

started = time.monotonic()
try:
    out = {"output": asyncio.run(call_node("text.regex", json.loads(sys.argv[1])))}
except NodeError as exc:
    out = {"error": str(exc), "type": type(exc).__name__}
out["seconds"] = round(time.monotonic() - started, 3)
print(json.dumps(out))
"""


def regex_in_child(params: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """Call the node in a child process; ``{"output"|"error", "seconds"}``."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(params)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_catastrophic_patterns_fail_the_node_with_a_clear_error() -> None:
    issue = regex_in_child({"text": ISSUE_TEXT, "pattern": ISSUE_PATTERN})
    assert issue.get("output") == {"matches": [], "truncated": False}, issue
    slow = regex_in_child({"text": ISSUE_TEXT, "pattern": SLOW_PATTERN, "match_timeout": 0.5})
    assert slow.get("type") == "NodeConfigError", slow
    assert "took longer than 0.5s" in slow["error"]
    assert SLOW_PATTERN in slow["error"], "the error names the pattern"


async def test_a_slow_match_does_not_stall_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)  # the scenario: a tick counts only while the loop is free
            ticks += 1

    running = asyncio.ensure_future(ticker())
    try:
        with pytest.raises(NodeConfigError, match="took longer than"):
            # exponential in every engine, but short enough to end even where nothing bounds it
            await call_node("text.regex", {"text": "a" * 26 + "b", "pattern": SLOW_PATTERN, "match_timeout": 1})
    finally:
        running.cancel()
    # The match ran ~1 s in another thread; without releasing the GIL the loop would not
    # have run at all meanwhile (measured: 1 tick, against ~100 with concurrent matching).
    assert ticks >= 5


def test_a_workflow_with_a_catastrophic_pattern_ends_failed_not_hung(prefect_server: str, tmp_path: Path) -> None:
    definition = {
        "name": "redos",
        "inputs": {"text": {"type": "string"}},
        "nodes": [
            {
                "id": "match",
                "type": "text.regex",
                "timeout": 60,
                "retries": 2,
                "params": {"text": "{{ inputs.text }}", "pattern": SLOW_PATTERN},
            },
            {"id": "other", "type": "core.set", "params": {"values": {"ok": True}}},
        ],
    }
    path = tmp_path / "redos.yaml"
    path.write_text(yaml.safe_dump(definition))
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "SWITCHBOARD_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "run", str(path), "--json", "-i", f"text={ISSUE_TEXT}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
        check=False,
    )
    result = json.loads(done.stdout)
    assert done.returncode != 0 and result["status"] == "failed", done.stderr[-2000:]
    node = result["nodes"]["match"]
    assert node["status"] == "failed"
    assert "took longer than 1s" in node["error"], "the match's own bound, long before the node's 60 s timeout"
    assert node["attempts"] == 1, "a pattern that is too slow is not retried"
    assert result["nodes"]["other"]["output"] == {"ok": True}


async def test_text_and_pattern_lengths_are_capped() -> None:
    with pytest.raises(ValidationError, match="at most 1000000 characters"):
        await call_node("text.regex", {"text": "a" * 1_000_001, "pattern": "a"})
    with pytest.raises(ValidationError, match="at most 10000 characters"):
        await call_node("text.regex", {"text": "a", "pattern": "a" * 10_001})


async def test_all_returns_at_most_10000_matches_and_says_so() -> None:
    out = await call_node("text.regex", {"text": "ab" * 50_000, "pattern": "a", "all": True})
    assert len(out["matches"]) == 10_000
    assert out["truncated"] is True


async def test_captured_text_is_capped_before_it_is_copied() -> None:
    # 100 nested groups around one 1,000,000-character match would copy 10^8 characters
    pattern = "(" * 100 + "a*" + ")" * 100
    with pytest.raises(NodeConfigError, match="more than 1000000 characters"):
        await call_node("text.regex", {"text": "a" * 1_000_000, "pattern": pattern})


async def test_a_pattern_nested_too_deeply_is_a_config_error() -> None:
    with pytest.raises(NodeConfigError, match="not a valid regex"):
        await call_node("text.regex", {"text": "a", "pattern": "(" * 2000 + ")" * 2000})
