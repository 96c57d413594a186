"""nodes.safe_json: untrusted JSON is refused with a named problem, never a traceback."""

from __future__ import annotations

import pytest

from nodes.safe_json import UnsafeJSONError, loads


def test_plain_json_parses() -> None:
    assert loads(b'{"a": [1, 2.5, "x]]}"], "b": null}') == {"a": [1, 2.5, "x]]}"], "b": None}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper than 64 levels (at line 1 column 65)"),
        ("1" * 5000, "integer of 5,000 digits"),
        ('{"n": NaN}', "has NaN"),
        ("[-Infinity]", "has -Infinity"),
        ("[1e999]", "too large for a float"),
        ('{"a": 1, "a": 2}', "the key 'a' twice"),
        ("{not-json", "not valid JSON: Expecting property name"),
        (b"\xff\xfe{\x00}\x00", "not UTF-8 text"),
        ("x" * (1024 * 1024 + 1), "more than the 1,048,576 allowed"),
    ],
)
def test_hostile_json_is_refused_with_a_named_problem(text: str | bytes, problem: str) -> None:
    with pytest.raises(UnsafeJSONError, match=r"^JSON ") as caught:
        loads(text)
    assert problem in str(caught.value)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert loads('["' + "[" * 1000 + '\\"' + "{" * 1000 + '"]') == ["[" * 1000 + '"' + "{" * 1000]


def test_bounds_are_the_callers() -> None:
    assert loads("[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(UnsafeJSONError, match="inputs nests deeper than 2 levels"):
        loads("[[[1]]]", max_depth=2, what="inputs")
    assert loads('{"a": 1, "a": 2}', unique_keys=False) == {"a": 2}
