"""YAML from untrusted files, loaded with its bounds checked while composing, before construction.

``yaml.safe_load`` builds no Python objects from tags, but it is not bounded: the composer
recurses once per nesting level (a 100k-deep ``[[[[`` is a ``RecursionError``), an alias is a
reference, so a "billion laughs" of anchors composes in milliseconds and then expands to
gigabytes in whatever walks it next, an anchor may refer to itself, a duplicate key silently
wins, ``.nan`` and ``.inf`` are floats, and a 5000-digit integer raises a bare ``ValueError``.

:func:`load` refuses each of those with a :class:`yaml.MarkedYAMLError` carrying the line and
column: depth is counted on the way down (an alias adds the depth of what it names), every
value is counted as it is composed and every alias adds the full size of the node it names
(values and characters), so an exponential expansion is refused at the alias that crosses the
bound; a recursive alias, a duplicate or non-string key, a non-finite float and an integer past
:data:`~flows.limits.MAX_INT_DIGITS` digits are refused while constructing.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.resolver import Resolver

from flows import limits

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NO_MARK = Mark("<text>", 0, 0, 0, "", 0)
_KINDS: dict[type, str] = {int: "an integer", float: "a number", bool: "a boolean", type(None): "null"}


class RefusedYAML(yaml.MarkedYAMLError):
    """Valid YAML outside the bounds (or with duplicate keys, non-string keys, NaN...)."""

    # Marks come from the Python reader or from libyaml (two Mark classes): typed Any.
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)


class _Measure:
    """The expanded size of an anchored node: values, characters, and height (nesting levels)."""

    __slots__ = ("height", "text", "values")

    def __init__(self, values: int, text: int, height: int) -> None:
        self.values, self.text, self.height = values, text, height


_Loader: Any
if yaml.__with_libyaml__:
    from yaml import cyaml

    _CParser: Any = cyaml.CParser  # type: ignore[attr-defined]  # the stubs do not export it

    # libyaml's parser (C, ~10x faster) for the events; composing and constructing stay in
    # Python, so the bounds below apply (CParser would compose in C: Composer comes first).
    class _LibYAMLLoader(Composer, _CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _Loader = _LibYAMLLoader
    #: libyaml reports a bad character's position in bytes of UTF-8, the Python reader in characters.
    POSITIONS_IN_BYTES = True
else:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader
    POSITIONS_IN_BYTES = False


class BoundedLoader(_Loader):
    """A safe loader that refuses depth, expansion, keys and numbers past :mod:`flows.limits`."""

    max_depth = limits.MAX_DEPTH
    max_values = limits.MAX_VALUES
    max_text = limits.MAX_TEXT
    max_int_digits = limits.MAX_INT_DIGITS

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0  # collections open around the node being composed
        self._peak = 0  # deepest level reached (for an anchored node's height)
        self._values = 0  # values composed so far, aliases expanded
        self._text = 0  # characters of scalars composed so far, aliases expanded
        self._measures: dict[str, _Measure] = {}
        self._open_anchors: set[str] = set()

    # --- composing: depth, expansion, recursion --------------------------------------------------

    def _refuse(self, what: str, mark: Any, alias: str | None) -> None:
        by = f"with the alias *{alias} " if alias else ""
        raise RefusedYAML(f"{by}the YAML {what}", mark)

    def _count(self, values: int, text: int, mark: Any, alias: str | None = None) -> None:
        self._values += values
        self._text += text
        if self._values > self.max_values:
            self._refuse(f"holds more than {self.max_values:,} values (each alias counts in full)", mark, alias)
        if self._text > self.max_text:
            self._refuse(f"holds more than {self.max_text:,} characters (each alias counts in full)", mark, alias)

    def _reach(self, depth: int, mark: Any, alias: str | None = None) -> None:
        self._peak = max(self._peak, depth)
        if depth > self.max_depth:
            self._refuse(f"nests deeper than {self.max_depth} levels", mark, alias)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            anchor = event.anchor
            if anchor in self._open_anchors:
                raise RefusedYAML(
                    f"the alias *{anchor} is inside the node &{anchor} it names (a recursive alias)",
                    event.start_mark,
                )
            measure = self._measures.get(anchor)
            if measure is not None:  # else: an undefined alias, which the composer reports
                self._count(measure.values, measure.text, event.start_mark, alias=anchor)
                self._reach(self._depth + measure.height, event.start_mark, alias=anchor)
            return super().compose_node(parent, index)
        event = self.peek_event()
        anchor = event.anchor
        before = (self._values, self._text, self._peak)
        if anchor is not None:
            self._open_anchors.add(anchor)
            self._peak = self._depth
        collection = not self.check_event(yaml.ScalarEvent)
        self._count(1, 0 if collection else len(event.value), event.start_mark)
        if collection:
            self._depth += 1
            self._reach(self._depth, event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
        if anchor is not None:
            self._open_anchors.discard(anchor)
            height = self._peak - self._depth
            self._measures[anchor] = _Measure(self._values - before[0], self._text - before[1], height)
            self._peak = max(before[2], self._peak)
        return node

    # --- constructing: keys and numbers ---------------------------------------------------------

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[str, Any] = {}
            for key_node, _ in node.value:  # the explicit keys: merged ones may be overridden
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self._string_key(key_node)
                if key in seen:
                    raise RefusedYAML(
                        f"the key {key[:100]!r} appears twice in one mapping (first on line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
            self.flatten_mapping(node)
            for key_node, _ in node.value:  # merged keys too
                self._string_key(key_node)
        return super().construct_mapping(node, deep=deep)

    def _string_key(self, key_node: Any) -> str:
        if not isinstance(key_node, ScalarNode):
            raise RefusedYAML(f"a {key_node.id} is used as a key, but keys must be strings", key_node.start_mark)
        key = self.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            kind = _KINDS.get(type(key), type(key).__name__)
            raise RefusedYAML(
                f"the key {str(key_node.value)[:40]!r} is read as {kind}, but keys must be strings (quote it)",
                key_node.start_mark,
            )
        return key

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = len(str(node.value).lstrip("+-").replace("_", ""))
        if digits > self.max_int_digits:
            raise RefusedYAML(f"an integer of {digits:,} digits (at most {self.max_int_digits})", node.start_mark)
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: ScalarNode) -> float:
        if len(str(node.value)) > self.max_int_digits + 30:
            raise RefusedYAML(
                f"a number of {len(node.value):,} characters (at most {self.max_int_digits + 30})",
                node.start_mark,
            )
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise RefusedYAML(
                f"the number {str(node.value)[:40]} is not finite (JSON has no NaN or Infinity)",
                node.start_mark,
            )
        return value

    def construct_timestamp_text(self, node: ScalarNode) -> str:
        """A date or time stays the text it was written as: a definition holds JSON values, and
        ``2024-01-01 10:00`` read as a datetime would come back from storage as different text."""
        return str(node.value)

    def construct_not_json(self, node: Node) -> Any:
        raise RefusedYAML(
            f"the tag {node.tag.replace('tag:yaml.org,2002:', '!!')} makes a value JSON does not have "
            "(a definition holds text, numbers, booleans, null, lists and mappings)",
            node.start_mark,
        )


_constructors: dict[str, Any] = {
    "int": BoundedLoader.construct_yaml_int,
    "float": BoundedLoader.construct_yaml_float,
    "timestamp": BoundedLoader.construct_timestamp_text,
    **dict.fromkeys(("binary", "set", "omap", "pairs"), BoundedLoader.construct_not_json),
}
for _tag, _constructor in _constructors.items():
    BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _constructor)


def load(text: str) -> Any:
    """The one YAML document in ``text``, within the bounds; raises :class:`yaml.YAMLError`."""
    try:
        loader = BoundedLoader(text)
    except UnicodeEncodeError as exc:  # a lone surrogate in text from Python
        raise RefusedYAML(f"the text has a lone surrogate character at offset {exc.start}", _NO_MARK) from None
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
