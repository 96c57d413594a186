"""How large and how deeply nested a template may be, checked before Jinja parses it.

Jinja's parser recurses once per bracket, per nested block, per ``not`` / unary minus in a row
and per ``else`` of a chained conditional; its code generator and Python's compiler recurse
once per level of the syntax tree. 5000 nested parentheses or 3000 nested ``{% if %}`` end in
a RecursionError (or Python's "too many statically nested blocks") deep inside Jinja. So a
template is measured first:

* its length (:data:`MAX_TEMPLATE_CHARS`), before anything else;
* its nesting, on Jinja's own tokens (the lexer is a flat loop): blocks inside blocks
  (:data:`MAX_BLOCK_DEPTH`) and, inside one tag, brackets, runs of unary operators and
  chained ``else`` (:data:`MAX_EXPRESSION_DEPTH`) — all before the parser runs;
* the depth of the parsed tree (:data:`MAX_TREE_DEPTH`: long ``a + b + ...`` or filter
  chains are flat to the parser but deep to the compiler), before it is compiled.

Each bound is far above what a real template needs and far below where Jinja or Python fail.
"""

from __future__ import annotations

from jinja2 import nodes
from jinja2.environment import Environment
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser

from flows.render_limits import ExpressionError

MAX_TEMPLATE_CHARS = 100_000
#: ``{% if %}``, ``{% for %}``, ``{% macro %}``, ... inside each other (Python allows 20 loops).
MAX_BLOCK_DEPTH = 16
#: Brackets, unary operators in a row and chained conditionals inside one ``{{ }}`` or ``{% %}``.
MAX_EXPRESSION_DEPTH = 32
#: Levels of the parsed template (each operator, filter, attribute, call or block is one).
MAX_TREE_DEPTH = 100

_OPENING = frozenset({"lparen", "lbracket", "lbrace"})
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})
_SEPARATORS = frozenset({"comma", "colon"})
_OPERAND_TYPES = frozenset({"integer", "float", "string", "rparen", "rbracket", "rbrace"})
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else"})
_BLOCKS = frozenset({"if", "for", "macro", "call", "filter", "with", "block", "autoescape"})
_TAG_ENDS = frozenset({"variable_end", "block_end"})


def excerpt(source: str, limit: int = 80) -> str:
    """The template, quoted, shortened for error messages."""
    return repr(source if len(source) <= limit else source[:limit] + "...")


def check_length(source: str) -> None:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ExpressionError(
            f"template is {len(source)} characters long, more than the {MAX_TEMPLATE_CHARS} allowed "
            f"(in {excerpt(source)})"
        )


def _too_deep(limit: int, source: str, lineno: int) -> ExpressionError:
    return ExpressionError(f"template nests deeper than {limit} levels (line {lineno}) in {excerpt(source)}")


def tokens_of(env: Environment, source: str) -> list[Token]:
    """Jinja's tokens for ``source`` (raises TemplateSyntaxError); lexing is a flat loop."""
    return list(env.lexer.tokenize(source))


def parse_tokens(env: Environment, source: str, tokens: list[Token]) -> nodes.Template:
    """Jinja's parse of ``source`` from its already lexed ``tokens`` (lexing is half the cost)."""
    parser = Parser(env, source)
    parser.stream = TokenStream(iter(tokens), None, None)
    return parser.parse()


def check_nesting(tokens: list[Token], source: str) -> None:
    """Refuse a template nested deeper than the parser can take (scans Jinja's tokens)."""
    blocks = 0
    brackets: list[int] = []  # per open bracket: chained `else`s inside it so far
    elses = unary = 0  # chained `else`s outside brackets; unary operators in a row
    first_in_tag = False
    assigns = False  # a `{% set %}` tag with `=` is a statement, without one it opens a block
    opening: str | None = None
    previous_operand = False
    for token in tokens:
        kind, value = token.type, token.value
        if kind in ("variable_begin", "block_begin"):
            brackets.clear()
            elses = unary = 0
            first_in_tag, assigns, opening, previous_operand = True, False, None, False
            continue
        if kind in _TAG_ENDS:
            if opening == "set" and assigns:
                opening = None  # `{% set x = ... %}` is a statement; `{% set x %}` opens a block
            if opening is not None:
                blocks += 1
                if blocks > MAX_BLOCK_DEPTH:
                    raise _too_deep(MAX_BLOCK_DEPTH, source, token.lineno)
            continue
        if first_in_tag and kind == "name":
            first_in_tag = False
            if value in _BLOCKS or value == "set":
                opening = value
            elif value.startswith("end"):
                blocks = max(blocks - 1, 0)
            if value in ("else", "elif", "endif"):
                continue
        first_in_tag = False
        if kind == "assign":
            assigns = True
        if kind in _OPENING:
            brackets.append(0)
        elif kind in _CLOSING:
            if brackets:
                brackets.pop()
        elif kind in _SEPARATORS:
            if brackets:
                brackets[-1] = 0
            else:
                elses = 0
        elif kind == "name" and value == "else":
            if brackets:
                brackets[-1] += 1
            else:
                elses += 1
        is_unary = (kind in ("sub", "add") and not previous_operand) or (kind == "name" and value == "not")
        unary = unary + 1 if is_unary else 0
        previous_operand = kind in _OPERAND_TYPES or (kind == "name" and value not in _KEYWORDS)
        if len(brackets) + sum(brackets) + elses + unary > MAX_EXPRESSION_DEPTH:
            raise _too_deep(MAX_EXPRESSION_DEPTH, source, token.lineno)


def walk(root: nodes.Template, source: str) -> list[nodes.Node]:
    """Every node of a parsed template, in one pass; refuses a tree deeper than the compiler
    can take."""
    found: list[nodes.Node] = []
    stack: list[tuple[nodes.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise ExpressionError(
                f"template is more than {MAX_TREE_DEPTH} levels deep (line {node.lineno}) in {excerpt(source)}"
            )
        found.append(node)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return found
