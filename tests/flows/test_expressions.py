"""Template expressions: native types, rendering, scope analysis, the sandbox and its bounds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flows.expressions import (
    MAX_OUTPUT_CHARS,
    Compiled,
    ExpressionError,
    compile_value,
    is_template,
    parse,
    render_value,
)


def make_context(**inputs: Any) -> dict[str, Any]:
    """A render context shaped like the runner's scope."""
    base_inputs: dict[str, Any] = {
        "n": 3,
        "f": 1.5,
        "flag": True,
        "xs": [1, 2],
        "d": {"x": 1},
        "none": None,
        "k": "a",
        "html": "<a>",
        "blob": '{"a": [1, 2], "b": null}',
    }
    base_inputs.update(inputs)
    return {
        "inputs": base_inputs,
        "nodes": {
            "a": {"output": {"v": 1, "items": [10, 20, 30]}, "status": "completed"},
            "b": {"output": "B", "status": "completed"},
        },
        "item": None,
        "index": None,
        "run": {"id": "run-1", "workflow": "wf", "version": 1, "trigger": "cli"},
        "env": {"REGION": "eu"},
    }


def render(source: Any, context: dict[str, Any] | None = None) -> Any:
    return compile_value(source).render(make_context() if context is None else context)


# --- native types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ inputs.n }}", 3),
        ("{{ inputs.f }}", 1.5),
        ("{{ inputs.flag }}", True),
        ("{{ not inputs.flag }}", False),
        ("{{ inputs.xs }}", [1, 2]),
        ("{{ inputs.d }}", {"x": 1}),
        ("{{ inputs.none }}", None),
        ("{{ none }}", None),
        ("{{ nodes.a.output.items }}", [10, 20, 30]),
        ("{{ nodes.a.output.v + 1 }}", 2),
        ("{{ inputs.n > 2 }}", True),
        ("{{ [inputs.n, inputs.k] }}", [3, "a"]),
        ("{{ {'k': inputs.n} }}", {"k": 3}),
        ("{{ '}}' }}", "}}"),
    ],
)
def test_single_expression_keeps_its_native_type(source: str, expected: Any) -> None:
    result = render(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("source", ["  {{ inputs.n }}", "{{ inputs.n }}  ", "\n {{ inputs.n }}\n", "{{inputs.n}}"])
def test_surrounding_whitespace_still_renders_natively(source: str) -> None:
    assert render(source) == 3
    assert isinstance(render(source), int)


@pytest.mark.parametrize("source", ["{{- inputs.n }}", "{{ inputs.n -}}", "{{- inputs.n -}}", "  {{- inputs.n -}}  "])
def test_whitespace_control_markers_are_not_part_of_the_native_expression(source: str) -> None:
    # Jinja's `{{-` / `-}}` only trim whitespace; they must not turn into a minus sign.
    result = render(source)
    assert result == 3
    assert isinstance(result, int)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("n={{ inputs.n }}", "n=3"),
        ("{{ inputs.n }}{{ inputs.n }}", "33"),
        ("{{ inputs.n }} and {{ inputs.flag }}", "3 and True"),
        ("{{ inputs.xs }}!", "[1, 2]!"),
        ("{% if inputs.flag %}{{ inputs.n }}{% endif %}", "3"),
        ("{{ inputs.n }}{# a comment #}", "3"),
        ("{{ inputs.html }}", "<a>"),
    ],
)
def test_mixed_text_renders_to_a_string(source: str, expected: str) -> None:
    result = render(source)
    assert result == expected
    assert isinstance(result, str)


def test_plain_values_pass_through_untouched() -> None:
    value = {"s": "plain text", "n": 1, "l": [True, None], "braces": "{ not a template }"}
    compiled = compile_value(value)
    assert compiled.templated is False
    assert compiled.refs == frozenset()
    assert compiled.render(make_context()) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("{{ x }}", True), ("{% if x %}{% endif %}", True), ("text", False), ("{ x }", False), (3, False), (None, False)],
)
def test_is_template(value: object, expected: bool) -> None:
    assert is_template(value) is expected


def test_nested_params_render_recursively() -> None:
    compiled = compile_value(
        {
            "a": "{{ nodes.a.output.v }}",
            "l": ["x", "{{ nodes['b'].output }}-{{ inputs.k }}", {"deep": "{{ inputs.xs }}"}],
            "lit": 5,
            "s": "plain",
        },
        "params",
    )
    assert compiled.templated is True
    assert compiled.render(make_context()) == {
        "a": 1,
        "l": ["x", "B-a", {"deep": [1, 2]}],
        "lit": 5,
        "s": "plain",
    }


def test_render_value_parses_and_renders_in_one_step() -> None:
    assert render_value({"x": ["{{ inputs.n * 2 }}"]}, make_context()) == {"x": [6]}


def test_rendering_does_not_mutate_the_compiled_value() -> None:
    compiled = compile_value({"x": "{{ inputs.n }}"})
    before = copy.deepcopy(compiled.value)
    assert compiled.render(make_context(n=1)) == {"x": 1}
    assert compiled.render(make_context(n=2)) == {"x": 2}
    assert compiled.value == before


# --- filters and statements --------------------------------------------------------------------


def test_tojson_does_not_html_escape() -> None:
    assert render("{{ inputs.html | tojson }}") == '"<a>"'
    assert render("{{ {'tag': '<b>&</b>'} | tojson }}") == '{"tag": "<b>&</b>"}'


def test_tojson_keeps_non_ascii_and_accepts_indent() -> None:
    assert render("{{ 'café' | tojson }}") == '"café"'
    assert render("{{ inputs.d | tojson(indent=2) }}") == '{\n  "x": 1\n}'


def test_fromjson_parses_json_text() -> None:
    assert render("{{ inputs.blob | fromjson }}") == {"a": [1, 2], "b": None}
    assert render("{{ (inputs.blob | fromjson).a[1] }}") == 2


def test_fromjson_of_invalid_json_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="fromjson"):
        render("{{ 'not json' | fromjson }}")


def test_tojson_fromjson_round_trip() -> None:
    assert render("{{ nodes.a.output | tojson | fromjson }}") == {"v": 1, "items": [10, 20, 30]}


def test_default_filter_covers_a_missing_value() -> None:
    assert render("{{ inputs.missing | default('fallback') }}") == "fallback"


def test_for_loop_with_loop_variables() -> None:
    source = "{% for x in inputs.xs %}{{ loop.index }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}"
    assert render(source) == "1:1, 2:2"


def test_for_loop_over_a_bounded_range_and_set() -> None:
    source = "{% set total = inputs.n * 2 %}{% for i in range(total) %}{{ i }}{% endfor %}"
    assert render(source) == "012345"


def test_item_index_run_and_env_are_in_scope() -> None:
    context = make_context()
    context.update(item={"body": "hello"}, index=4)
    assert render("{{ item.body }}#{{ index }} {{ run.id }} {{ env.REGION }}", context) == "hello#4 run-1 eu"


# --- scope analysis: refs, names, inputs --------------------------------------------------------


def test_refs_from_attribute_and_literal_key_access() -> None:
    compiled = compile_value({"x": "{{ nodes.a.output }}", "y": ["{{ nodes['b'].output }}"]})
    assert isinstance(compiled, Compiled)
    assert compiled.refs == frozenset({"a", "b"})
    assert compiled.names == frozenset({"nodes"})


def test_refs_inside_statements_are_found() -> None:
    template = parse("{% for i in nodes.a.output.items %}{{ i }}{{ nodes.b.status }}{% endfor %}")
    assert template.refs == frozenset({"a", "b"})
    assert template.native is False


def test_inputs_read_are_collected() -> None:
    compiled = compile_value({"x": "{{ inputs.repo }}/{{ inputs.issue }}", "y": "{{ item }}"})
    assert compiled.inputs == frozenset({"repo", "issue"})
    assert compiled.names == frozenset({"inputs", "item"})
    assert compiled.refs == frozenset()


def test_inputs_read_with_a_literal_key_are_collected() -> None:
    assert parse("{{ inputs['repo'] }}").inputs == frozenset({"repo"})


def test_a_local_variable_named_like_a_scope_name_is_not_a_scope_read() -> None:
    template = parse("{% set inputs = {'z': 1} %}{{ inputs.z }}")
    assert template.inputs == frozenset()
    assert "inputs" not in template.names


# --- strict undefined and runtime errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("{{ inputs.missing }}", "missing"),
        ("before {{ inputs.missing }} after", "missing"),
        ("{{ nodes.a.output.nope }}", "nope"),
        ("{{ nodes.zz.output }}", "zz"),
        ("{{ inputs.missing | tojson }}", "missing"),
    ],
)
def test_missing_key_is_an_error_naming_the_attribute(source: str, missing: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(source)
    assert repr(missing) in str(info.value)


def test_runtime_errors_become_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}")
    with pytest.raises(ExpressionError, match="no element 5"):
        render("{{ inputs.xs[5] }}")


@pytest.mark.parametrize("source", ["{{ inputs.n + }}", "{% for %}", "{{ oops( }}", "{% if x %}", "{{ }}"])
def test_syntax_errors_are_reported_when_compiling(source: str) -> None:
    with pytest.raises(ExpressionError, match="syntax"):
        compile_value(source)


def test_compile_errors_start_with_the_path_of_the_bad_string() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value({"a": ["ok", {"b": "{{ oops( }}"}]}, "params")
    assert str(info.value).startswith("params.a[1].b: ")
    assert "syntax" in str(info.value)


# --- the sandbox ---------------------------------------------------------------------------------

SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ inputs.__class__ }}",
    "{{ inputs['__globals__'] }}",
    "{{ cycler }}",
    "{{ lipsum }}",
    "{{ joiner }}",
    "{{ namespace }}",
    "{{ self }}",
    "{{ config }}",
    "{{ request }}",
    "{{ dict(a=1) }}",
    "{{ inputs|attr('__class__') }}",
    "{{ '{0.__class__}'.format(inputs) }}",
    "{{ inputs.items.__self__ }}",
    "{{ range.__init__.__globals__ }}",
    "{{ inputs.xs.append(1) }}",
    "{{ inputs.d.update({'x': 2}) }}",
    "{{ inputs.xs.pop() }}",
    "{% set x = inputs.__class__ %}",
    "{{ nodes[inputs.k] }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    context = make_context()
    before = copy.deepcopy(context)
    with pytest.raises(ExpressionError):
        compile_value(source).render(context)
    # Nothing ran: the scope is exactly as it was (the immutable sandbox refuses mutation).
    assert context == before


@pytest.mark.parametrize("source", ["{{ inputs.__class__ }}", "{{ inputs['_private'] }}", "{{ cycler }}"])
def test_unsafe_names_are_refused_statically(source: str) -> None:
    # Refused while compiling, before any context exists.
    with pytest.raises(ExpressionError):
        compile_value(source)


def test_dynamic_node_reference_is_refused_with_a_reason() -> None:
    with pytest.raises(ExpressionError, match="literal node id"):
        compile_value("{{ nodes[inputs.k] }}")


def test_unknown_name_error_lists_the_available_names() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value("{{ config }}")
    message = str(info.value)
    assert "'config'" in message
    for name in ("inputs", "nodes", "item", "index", "run", "env"):
        assert name in message


# --- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 100000000 }}",
        "{{ 100000000 * 'a' }}",
        "{{ 9 ** 99999 }}",
        "{{ 2.0 ** 300 }}",
        "{{ [1] * 10000000 }}",
        "{{ range(10000000) | list }}",
        "{% for i in range(200000) %}xxxxxxxxxx{% endfor %}",
        "x{{ ('a' * 1000000) ~ ('a' * 1000000) }}",
    ],
)
def test_oversized_values_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        render(source)


def test_output_longer_than_the_limit_names_the_limit() -> None:
    with pytest.raises(ExpressionError, match=f"{MAX_OUTPUT_CHARS}"):
        render("{% for i in range(200000) %}xxxxxxxxxx{% endfor %}")


@pytest.mark.parametrize(
    "source",
    [
        # A native (single-expression) value is not streamed, but must be bounded all the same.
        "{{ ('a' * 1000000) ~ ('a' * 1000000) }}",
        "{{ [0] * 1000000 + [0] * 1000000 }}",
    ],
)
def test_native_values_are_bounded_in_size(source: str) -> None:
    with pytest.raises(ExpressionError):
        render(source)


def test_chained_powers_cannot_bypass_the_exponent_bound() -> None:
    # Each exponent is within MAX_EXPONENT, but the result has ~5 million digits; with base 10
    # the same shape runs for tens of seconds, far past the render time bound.
    with pytest.raises(ExpressionError):
        render("{{ ((2 ** 256) ** 256) ** 256 }}")


def test_long_running_loop_hits_the_time_bound() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(ExpressionError, match="longer than"):
        render(source)


def test_values_within_bounds_render() -> None:
    assert render("{{ 2 ** 8 }}") == 256
    assert render("{{ 'ab' * 3 }}") == "ababab"
    assert len(render("{% for i in range(1000) %}x{% endfor %}")) == 1000


@pytest.mark.parametrize("source", ["{{ nodes | tojson }}", "{% for k in nodes %}{{ k }}{% endfor %}", "{{ nodes }}"])
def test_bare_nodes_is_refused_because_the_dependency_would_be_unknown(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"nodes\.<id>"):
        compile_value(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ inputs.x | uper }}", "unknown filter 'uper' in '{{ inputs.x | uper }}'; did you mean 'upper'?"),
        ("{% if inputs.x is od %}y{% endif %}", "unknown test 'od'"),
    ],
)
def test_unknown_filters_and_tests_are_refused_when_the_workflow_is_validated(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("?", r"\?").replace("|", r"\|")):
        compile_value({"text": source}, "params")
