"""Templates as an attacker writes them: sizes, time, nesting and sandbox escapes are bounded.

Hostile templates run in a child process (``tests/security/render_child.py``) under a 1 GiB
address-space ceiling, so one that would take gigabytes fails there (MemoryError) instead of
taking this machine's memory; a wall-clock timeout stops one that would hang. Every template
must end in an :class:`~flows.expressions.ExpressionError` that names the limit — never a
MemoryError, a RecursionError, another exception type or a hang. The fuzz test at the end
builds such templates from a grammar of the dangerous pieces.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st

from flows.expressions import ExpressionError, compile_value

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30


@dataclass(frozen=True)
class Outcome:
    outcome: str
    message: str
    seconds: float | None = None


def render_isolated(
    templates: list[str], *, memory_bytes: int = GIB, render_seconds: float = 2.0, timeout: float = 300.0
) -> list[Outcome]:
    """Render each template in one child process under a memory ceiling; one outcome each.

    A template the child did not report on is ``hung`` (the timeout stopped it) or
    ``crashed`` (the child died on it), and the ones after it ``not run``.
    """
    request = json.dumps({"templates": templates, "memory_bytes": memory_bytes, "render_seconds": render_seconds})
    hung = False
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.security.render_child"],
            input=request.encode(),
            capture_output=True,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        hung = True
        stdout, stderr = exc.stdout or b"", exc.stderr or b""
    outcomes = [Outcome(**json.loads(line)) for line in stdout.decode().splitlines() if line.strip()]
    if len(outcomes) < len(templates):
        why = "hung" if hung else "crashed"
        outcomes.append(Outcome(why, stderr.decode(errors="replace")[-400:]))
        outcomes += [Outcome("not run", "")] * (len(templates) - len(outcomes))
    return outcomes


# --- item 13: sizes are bounded before the value is built -----------------------------------

_LIMIT = "1000000"
_BIG_LIST = "{% set x = range(1000000)|list %}"
_SQUARES = "{% set a = 3 %}" + "{% set a = a * a %}" * 30 + "{{ a > 0 }}"

#: (template, what the error message must name)
OVERSIZED = [
    # printf-style formatting: the format filter and the % operator, widths and precisions
    ("{{ '%900000000d'|format(1) }}", _LIMIT),
    ("{{ '%999999999d' % 1 }}", _LIMIT),
    ("{{ '%*d' % (999999999, 1) }}", _LIMIT),
    ("{{ '%.999999999f' % 1.5 }}", _LIMIT),
    ("{{ ('%s' * 100000) % ((inputs.text,) * 100000) }}", _LIMIT),
    # str.format and format_map through attribute access
    ("{{ '{:>900000000}'.format(1) }}", _LIMIT),
    ("{{ '{:.900000000f}'.format(1.5) }}", _LIMIT),
    ("{{ '{0:{1}}'.format(1, 900000000) }}", _LIMIT),
    ("{{ ('{0}' * 10000).format(inputs.text) }}", _LIMIT),
    ("{{ '{x:>900000000}'.format_map({'x': 1}) }}", _LIMIT),
    # padding, tabs, replacement, translation
    ("{{ 'a'|center(900000000) }}", _LIMIT),
    ("{{ 'a'.center(900000000) }}", _LIMIT),
    ("{{ 'a'.ljust(900000000) }}", _LIMIT),
    ("{{ 'a'.rjust(900000000) }}", _LIMIT),
    ("{{ 'a'.zfill(900000000) }}", _LIMIT),
    ("{{ 'a'|indent(900000000, true) }}", _LIMIT),
    ("{{ ('\t' * 100000).expandtabs(100000) }}", _LIMIT),
    ("{{ inputs.text|replace(' ', 'x' * 1000) }}", _LIMIT),
    ("{{ inputs.text.replace(' ', 'x' * 1000) }}", _LIMIT),
    ("{{ inputs.text.translate({32: 'x' * 1000}) }}", _LIMIT),
    ("{{ ('a ' * 20000)|wordwrap(1, wrapstring='x' * 1000) }}", _LIMIT),
    # joins count the parts and the separators
    ("{{ ('a' * 2000)|join('b' * 1000) }}", _LIMIT),
    ("{{ ('b' * 1000).join('a' * 2000) }}", _LIMIT),
    ("{{ range(400000)|join(', ') }}", _LIMIT),
    # repetition and nested sizes: a list of 10^6 references to a 10^6-item list
    (_BIG_LIST + "{{ ([x] * 1000000)|length }}", _LIMIT),
    (_BIG_LIST + "{{ [x, x]|length }}", _LIMIT),
    (_BIG_LIST + "{{ {'a': x, 'b': x}|length }}", _LIMIT),
    (_BIG_LIST + "{% set y = [x] %}{{ (y * 2)|length }}", _LIMIT),
    (_BIG_LIST + "{{ x|string|length }}", _LIMIT),
    (_BIG_LIST + "{{ x|tojson|length }}", _LIMIT),
    (_BIG_LIST + "{{ (x + x)|length }}", _LIMIT),
    ("{% set x = [0] * 1000 %}{{ ([x] * 1000)|sum(start=[x] * 1000)|length }}", _LIMIT),
    ("{% set x = 'a' * 1000000 %}{{ (x ~ x)|length }}", _LIMIT),
    ("{% set x = 'a' * 1000000 %}{{ [x, x]|join|length }}", _LIMIT),
    ("{% set x = 'a' * 600000 %}{{ x ~ x }}", _LIMIT),
    # buffers: set blocks and filter blocks collect text before it is joined (macros are refused)
    (
        "{% set x = 'a' * 1000000 %}{% set y %}{% for i in range(100) %}{{ x }}{% endfor %}{% endset %}{{ y|length }}",
        _LIMIT,
    ),
    ("{% filter upper %}{% for i in range(100) %}{{ 'a' * 1000000 }}{% endfor %}{% endfilter %}", _LIMIT),
    # sequence builders
    ("{{ [1]|batch(900000000, 0)|list|length }}", _LIMIT),
    ("{{ [1]|slice(900000000)|list|length }}", _LIMIT),
    ("{{ (1).to_bytes(900000000, 'big')|length }}", _LIMIT),
    ("{{ 1.5|round(1000000000, 'ceil') }}", "precision"),
    # integers: a chain of squarings is refused by its size, not by the clock
    (_SQUARES, "65536 bits"),
    ("{% set a = (2 ** 256) ** 200 %}{{ a * a > 0 }}", "65536 bits"),
    # time: pure-Jinja loops and operators are bounded too (no call, no range)
    ("{% for a in inputs.xs %}{% for b in inputs.xs %}{% endfor %}{% endfor %}", "longer than"),
    ("{% for a in inputs.xs %}{% for b in inputs.xs %}{% set c = a * b %}{% endfor %}{% endfor %}", "longer than"),
    # recursion: a recursive loop over a 60-deep list
    (
        "{% set a = [1] %}" + "{% set a = [a] %}" * 60 + "{% for x in a recursive %}"
        "{% if x is sequence %}{{ loop(x) }}{% endif %}{% endfor %}",
        "deeper than 50",
    ),
]


@pytest.fixture(scope="module")
def oversized() -> dict[str, Outcome]:
    sources = [source for source, _ in OVERSIZED]
    return dict(zip(sources, render_isolated(sources), strict=True))


@pytest.mark.parametrize(("source", "limit"), OVERSIZED, ids=[s[-60:] for s, _ in OVERSIZED])
def test_oversized_templates_fail_with_an_expression_error_naming_the_limit(
    oversized: dict[str, Outcome], source: str, limit: str
) -> None:
    got = oversized[source]
    assert got.outcome == "ExpressionError", got
    assert limit in got.message, got
    assert "(in " in got.message, "the error names the template"


def test_a_memory_error_while_rendering_is_an_expression_error() -> None:
    class Huge:
        def __str__(self) -> str:
            raise MemoryError

    context = {"inputs": {"huge": Huge()}, "nodes": {}, "item": None, "index": None, "run": {}, "env": {}}
    with pytest.raises(ExpressionError, match="memory"):
        compile_value("text {{ inputs.huge }}").render(context)


# --- item 15: what the expression checker parses and walks is bounded ------------------------

NESTED = [
    ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nests deeper than"),
    ("{{ " + "[" * 5000 + "1" + "]" * 5000 + " }}", "nests deeper than"),
    ("{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000, "nests deeper than"),
    ("{% for a in [1] %}" * 24 + "x" + "{% endfor %}" * 24, "nests deeper than"),
    ("{% macro m() %}" * 200 + "{% endmacro %}" * 200, "nests deeper than"),
    ("{{ " + "-" * 5000 + "1 }}", "nests deeper than"),
    ("{{ " + "not " * 5000 + "1 }}", "nests deeper than"),
    ("{{ " + "1 if 0 else " * 5000 + "1 }}", "nests deeper than"),
    ("{{ 1" + " + 1" * 5000 + " }}", "levels deep"),
    ("{{ inputs.n" + "|abs" * 5000 + " }}", "levels deep"),
    ("{{ inputs" + ".a" * 5000 + " }}", "levels deep"),
    ("{{ inputs.n" + " and inputs.n" * 5000 + " }}", "levels deep"),
    ("{{ 'x' }}" + "y" * 200_001, "characters long"),
]


@pytest.mark.parametrize(("source", "limit"), NESTED, ids=[f"{s[:24]}..{len(s)}" for s, _ in NESTED])
def test_deeply_nested_templates_are_refused_when_the_workflow_is_checked(source: str, limit: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        compile_value({"text": source}, "params")
    assert limit in str(info.value)
    assert str(info.value).startswith("params.text: ")
    assert len(str(info.value)) < 400, "the message quotes the template, shortened"
    assert time.monotonic() - started < 30, "refused without parsing the whole thing (generous bound)"


def test_deeply_nested_params_are_refused() -> None:
    value: object = "{{ inputs.n }}"
    for _ in range(5000):
        value = [value]
    with pytest.raises(ExpressionError, match="nest deeper than"):
        compile_value({"values": value}, "params")


def test_validate_exits_2_naming_the_node_and_the_limit(tmp_path: Path) -> None:
    parens = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    ifs = "{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000
    definition = {
        "name": "nested",
        "nodes": [
            {"id": "parens", "type": "core.set", "params": {"values": {"x": parens}}},
            {"id": "ifs", "type": "text.template", "params": {"template": ifs}},
        ],
    }
    path = tmp_path / "nested.yaml"
    path.write_text(yaml.safe_dump(definition, width=1 << 20))
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "node 'parens': params.values.x: template nests deeper than" in done.stderr
    assert "node 'ifs': params.template: template nests deeper than" in done.stderr


# --- the sandbox: every escape refused today stays refused -----------------------------------

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ inputs.__class__.__mro__ }}",
    "{{ inputs|attr('__class__') }}",
    "{{ '{0.__class__}'.format(inputs) }}",
    "{{ '{0.__class__}'.format_map([inputs]) }}",
    "{{ inputs.xs|map(attribute='__class__')|list }}",
    "{{ range.__globals__ }}",
    "{{ lipsum }}",
    "{{ cycler }}",
    "{{ self }}",
    "{{ config }}",
    "{{ range(1000000000) }}",
    "{{ inputs.xs.append(1) }}",
    "{{ inputs.d.update({}) }}",
    "{{ inputs['__class__'] }}",
    "{{ (1).__class__ }}",
    "{{ (1).to_bytes.__self__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_stay_refused(source: str) -> None:
    scope = {"inputs": {"xs": [1, 2], "d": {"k": 1}}, "nodes": {}, "item": None, "index": None, "run": {}, "env": {}}
    with pytest.raises(ExpressionError):
        compile_value(source).render(scope)
    assert scope["inputs"] == {"xs": [1, 2], "d": {"k": 1}}


# --- fuzz: hostile templates built from a grammar of the dangerous pieces ---------------------

_NUMBERS = st.sampled_from(["0", "1", "7", "1000", "1000000", "999999999", "10 ** 9", "-1", "2 ** 64"])
_ATOMS = st.sampled_from(
    [
        "inputs.s",
        "inputs.xs",
        "inputs.text",
        "inputs.d",
        "nodes.a.output",
        "nodes.a.output.items",
        "'ab'",
        "'%s%s'",
        "'{0}{0}'",
        "'\t'",
        "[0]",
        "(1, 2)",
        "{'k': 1}",
        "1.5",
        "7",
        "range(1000)|list",
        "a",
    ]
)
_ESCAPE_PIECES = st.sampled_from(
    ["__class__", "__mro__", "__globals__", "__subclasses__()", "__init__", "__self__", "__dict__"]
)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    two = st.tuples(inner, inner)
    with_number = st.tuples(inner, _NUMBERS)
    return st.one_of(
        with_number.map(lambda p: f"({p[0]} * {p[1]})"),
        two.map(lambda p: f"({p[0]} + {p[1]})"),
        two.map(lambda p: f"({p[0]} ~ {p[1]})"),
        st.tuples(inner, inner, inner).map(lambda p: f"[{p[0]}, {p[1]}, {p[2]}]"),
        two.map(lambda p: f"{{'k': {p[0]}, 'v': {p[1]}}}"),
        with_number.map(lambda p: f"('%{p[1]}d' % {p[0]})"),
        with_number.map(lambda p: f"('%*s' % ({p[1]}, {p[0]}))"),
        with_number.map(lambda p: f"('{{:>{p[1]}}}'.format({p[0]}))"),
        two.map(lambda p: f"({p[0]} % {p[1]})"),
        two.map(lambda p: f"({p[0]}).format({p[1]}, {p[1]})"),
        with_number.map(lambda p: f"({p[0]}|center({p[1]}))"),
        with_number.map(lambda p: f"({p[0]}|format({p[1]}))"),
        with_number.map(lambda p: f"({p[0]}|indent({p[1]}))"),
        with_number.map(lambda p: f"({p[0]}|batch({p[1]}, 0)|list)"),
        with_number.map(lambda p: f"({p[0]}|slice({p[1]})|list)"),
        with_number.map(lambda p: f"({p[0]}|round({p[1]}, 'ceil'))"),
        with_number.map(lambda p: f"({p[0]}|truncate({p[1]}))"),
        with_number.map(lambda p: f"({p[0]}|wordwrap({p[1]}))"),
        two.map(lambda p: f"({p[0]}|join({p[1]}))"),
        two.map(lambda p: f"({p[0]}|replace('a', {p[1]}))"),
        two.map(lambda p: f"({p[0]}|wordwrap(1, wrapstring={p[1]}))"),
        two.map(lambda p: f"({p[0]}|sum(start={p[1]}))"),
        inner.map(lambda e: f"({e}|string)"),
        inner.map(lambda e: f"({e}|tojson)"),
        inner.map(lambda e: f"({e}|pprint)"),
        inner.map(lambda e: f"({e}|list)"),
        inner.map(lambda e: f"({e}|map('string')|list)"),
        inner.map(lambda e: f"({e}|unique|list)"),
        inner.map(lambda e: f"({e}|urlize)"),
        inner.map(lambda e: f"({e}|xmlattr)"),
        with_number.map(lambda p: f"({p[0]}).center({p[1]})"),
        with_number.map(lambda p: f"({p[0]}).zfill({p[1]})"),
        with_number.map(lambda p: f"({p[0]}).expandtabs({p[1]})"),
        with_number.map(lambda p: f"({p[1]}).to_bytes({p[1]}, 'big')"),
        two.map(lambda p: f"({p[0]}).join({p[1]})"),
        two.map(lambda p: f"({p[0]}).replace('a', {p[1]})"),
        two.map(lambda p: f"({p[0]}).translate({{97: {p[1]}}})"),
        with_number.map(lambda p: f"({p[1]} ** {p[1]})"),
        with_number.map(lambda p: f"range({p[1]})"),
    )


_EXPRESSIONS = st.recursive(_ATOMS, _extend, max_leaves=6)


def _statement() -> st.SearchStrategy[tuple[str, bool]]:
    """One piece of template text, and whether it contains a sandbox escape."""
    plain = st.one_of(
        _EXPRESSIONS.map(lambda e: f"{{{{ {e} }}}}"),
        _EXPRESSIONS.map(lambda e: f"{{% set a = {e} %}}"),
        st.tuples(st.integers(1, 40), st.sampled_from(["a * a", "a ~ a", "[a, a]", "a + a", "(a, a)"])).map(
            lambda p: "{% set a = 3 %}" + f"{{% set a = {p[1]} %}}" * p[0] + "{{ a|length if a is sequence else a }}"
        ),
        st.tuples(_EXPRESSIONS, _EXPRESSIONS).map(lambda p: f"{{% for i in {p[0]} %}}{{{{ {p[1]} }}}}{{% endfor %}}"),
        st.tuples(_EXPRESSIONS, _EXPRESSIONS).map(
            lambda p: (
                f"{{% set b %}}{{% for i in {p[0]} %}}{{{{ {p[1]} }}}}{{% endfor %}}{{% endset %}}{{{{ b|length }}}}"
            )
        ),
        st.integers(1, 120).map(
            lambda k: (
                "{% set a = [1] %}" + "{% set a = [a, a] %}" * k + "{% for x in a recursive %}"
                "{% if x is sequence %}{{ loop(x) }}{% endif %}{% endfor %}"
            )
        ),
        st.integers(1, 6000).map(lambda k: "{{ " + "(" * k + "1" + ")" * k + " }}"),
        st.integers(1, 4000).map(lambda k: "{% if 1 %}" * k + "x" + "{% endif %}" * k),
        st.integers(1, 4000).map(lambda k: "{{ " + "-" * k + "1 }}"),
        st.integers(1, 4000).map(lambda k: "{{ 1" + " + 1" * k + " }}"),
    ).map(lambda text: (text, False))
    escape = st.one_of(
        st.sampled_from(ESCAPES),
        st.tuples(_EXPRESSIONS, _ESCAPE_PIECES).map(lambda p: f"{{{{ ({p[0]}).{p[1]} }}}}"),
        st.tuples(_EXPRESSIONS, _ESCAPE_PIECES).map(lambda p: f"{{{{ ({p[0]})|attr('{p[1]}') }}}}"),
        st.tuples(_EXPRESSIONS, _ESCAPE_PIECES).map(lambda p: f"{{{{ '{{0.{p[1]}}}'.format({p[0]}) }}}}"),
    ).map(lambda text: (text, True))
    return st.one_of(plain, plain, plain, escape)


_TEMPLATES = st.lists(_statement(), min_size=1, max_size=3).map(
    lambda parts: ("".join(text for text, _ in parts), any(bad for _, bad in parts))
)


# No shrinking: every step would be a child process. A failure names the template (shortened).
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    phases=(Phase.generate,),
    verbosity=Verbosity.quiet,
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(_TEMPLATES, min_size=60, max_size=60))
def test_fuzzed_hostile_templates_render_within_bounds_or_fail_with_an_expression_error(
    batch: list[tuple[str, bool]],
) -> None:
    sources = [source for source, _ in batch]
    outcomes = render_isolated(sources, render_seconds=0.5, timeout=240)
    for (source, escapes), got in zip(batch, outcomes, strict=True):
        assert got.outcome in ("ok", "ExpressionError"), (source[:300], got)
        if escapes:
            assert got.outcome == "ExpressionError", (source[:300], got)
