"""Hostile workflow-definition files: the issue-11 corpus and seeded mutations of the examples.

Each :class:`Hostile` is one file (name, suffix, bytes) and what loading it must give: ``None``
for a valid definition, else a fragment of the one problem that names what is wrong.
"""

from __future__ import annotations

import codecs
import json
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: A valid definition to embed hostile parts into (``PARAMS`` is replaced by a params mapping).
BASE = """\
name: hostile
description: a definition under attack
inputs:
  count: {type: integer, default: 1}
nodes:
  - id: a
    type: core.set
    params: PARAMS
"""


@dataclass(frozen=True)
class Hostile:
    name: str
    content: bytes
    suffix: str = ".yaml"
    #: None: the file is a valid definition; otherwise a fragment of the problem's message.
    expect: str | None = "?"


def with_params(params: str) -> str:
    return BASE.replace("PARAMS", params)


def _json_base(values: str) -> str:
    return '{"name": "hostile", "nodes": [{"id": "a", "type": "core.set", "params": {"values": ' + values + "}}]}"


def with_values_block(lines: list[str]) -> str:
    """The definition with ``params: {values: ...}`` in block style, ``lines`` being the values."""
    return BASE.replace(" PARAMS", "\n      values:\n" + "".join(f"        {line}\n" for line in lines))


def _laughs(levels: int, width: int) -> str:
    """The YAML "billion laughs": each anchor is a list of ``width`` aliases of the previous."""
    lines = ['l0: &l0 "lol"']
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return with_values_block(lines)


def _block_mapping(depth: int) -> str:
    return with_values_block(["  " * i + "k:" for i in range(depth)] + ["  " * depth + "k: 1"])


def corpus() -> list[Hostile]:
    """The 39-style corpus of issue 11, extended: one file per attack, each with its expectation."""
    deep = 100_000
    valid = with_params("{values: {greeting: hello}}")
    digits = "7" * 5000
    return [
        # --- depth
        Hostile("yaml-flow-deep", with_params("[" * deep + "]" * deep).encode(), expect="deeper than"),
        Hostile("yaml-flow-deep-mapping", with_params("{a: " * deep + "1" + "}" * deep).encode(), expect="deeper than"),
        Hostile("yaml-block-deep", with_params("\n      " + "- " * deep + "x").encode(), expect="deeper than"),
        Hostile("yaml-block-mapping-deep", _block_mapping(600).encode(), expect="deeper than"),
        Hostile("yaml-unclosed-deep", ("name: x\nnodes: " + "[" * deep).encode(), expect="deeper than"),
        Hostile("json-deep-array", _json_base("[" * deep + "]" * deep).encode(), ".json", "deeper than"),
        Hostile("json-deep-object", _json_base('{"a": ' * deep + "1" + "}" * deep).encode(), ".json", "deeper than"),
        # --- encodings
        Hostile("latin-1", valid.replace("a definition", "caf\u00e9").encode("latin-1"), expect="not UTF-8"),
        Hostile("utf-8-bom", codecs.BOM_UTF8 + valid.encode(), expect=None),
        Hostile("utf-16-le-bom", codecs.BOM_UTF16_LE + valid.encode("utf-16-le"), expect=None),
        Hostile("utf-16-be-bom", codecs.BOM_UTF16_BE + valid.encode("utf-16-be"), expect=None),
        Hostile("utf-16-no-bom", valid.encode("utf-16-le"), expect="UTF-16 text without a byte-order mark"),
        Hostile("utf-32-bom", codecs.BOM_UTF32_LE + valid.encode("utf-32-le"), expect="UTF-32"),
        Hostile("utf-16-odd-length", codecs.BOM_UTF16_LE + valid.encode("utf-16-le") + b"x", expect="UTF-16"),
        Hostile("json-utf-8-bom", codecs.BOM_UTF8 + _json_base("{}").encode(), ".json", None),
        Hostile("json-not-utf-8", _json_base('{"k": "\xff\xfe"}').encode("latin-1"), ".json", "not UTF-8"),
        Hostile("lone-surrogate-yaml", with_params('{values: {k: "\\ud800"}}').encode(), expect="Unicode"),
        Hostile("lone-surrogate-json", _json_base('{"k": "\\ud800"}').encode(), ".json", "surrogate"),
        # --- numbers
        Hostile("yaml-int-5000-digits", BASE.replace("default: 1", "default: " + digits).encode(), expect="digits"),
        Hostile("yaml-int-in-params", with_params(f"{{values: {{n: {digits}}}}}").encode(), expect="digits"),
        Hostile("yaml-hex-int-huge", with_params(f"{{values: {{n: 0x{'f' * 5000}}}}}").encode(), expect="digits"),
        Hostile("yaml-float-5000-digits", with_params(f"{{values: {{n: 1.{digits}}}}}").encode(), expect="number"),
        Hostile("yaml-float-overflow", with_params("{values: {n: 1.0e+999}}").encode(), expect="finite"),
        Hostile("yaml-nan", with_params("{values: {n: .nan}}").encode(), expect="finite"),
        Hostile("yaml-inf", with_params("{values: {n: .inf}}").encode(), expect="finite"),
        Hostile("yaml-minus-inf", with_params("{values: {n: -.Inf}}").encode(), expect="finite"),
        Hostile("json-int-5000-digits", _json_base('{"n": ' + digits + "}").encode(), ".json", "digits"),
        Hostile("json-nan", _json_base('{"n": NaN}').encode(), ".json", "NaN"),
        Hostile("json-infinity", _json_base('{"n": -Infinity}').encode(), ".json", "Infinity"),
        Hostile("json-float-overflow", _json_base('{"n": 1e999}').encode(), ".json", "too large"),
        # --- aliases
        Hostile("recursive-alias-seq", with_params("{values: &a {x: [*a]}}").encode(), expect="recursive"),
        Hostile("recursive-alias-map", with_params("&a {values: {self: *a}}").encode(), expect="recursive"),
        Hostile("billion-laughs", _laughs(10, 10).encode(), expect="alias"),
        Hostile("laughs-wide", _laughs(3, 3000).encode(), expect="alias"),
        Hostile(
            "laughs-long-string",
            with_params(
                "{values: {s: &s '" + "x" * 200_000 + "', copies: [" + ", ".join(["*s"] * 100) + "]}}"
            ).encode(),
            expect="alias",
        ),
        Hostile("laughs-merge-keys", _merge_laughs().encode(), expect="alias"),
        Hostile("alias-depth-chain", _alias_depth_chain().encode(), expect="deeper than"),
        Hostile("undefined-alias", with_params("{values: {a: *nowhere}}").encode(), expect="nowhere"),
        Hostile("small-aliases-are-fine", with_params("{values: {a: &x [1, 2], b: *x}}").encode(), expect=None),
        # --- keys
        Hostile("duplicate-top-level-key", (valid + "name: other\n").encode(), expect="twice"),
        Hostile("duplicate-key-in-params", with_params("{values: {a: 1, a: 2}}").encode(), expect="twice"),
        Hostile("duplicate-key-json", _json_base('{"a": 1, "a": 2}').encode(), ".json", "twice"),
        Hostile("integer-key", with_params("{values: {1: one}}").encode(), expect="string"),
        Hostile("null-key", with_params("{values: {null: nothing}}").encode(), expect="string"),
        Hostile("complex-key", with_params("{values: {? [a, b] : c}}").encode(), expect="string"),
        Hostile(
            "merge-key-is-fine", with_params("{values: {base: &b {x: 1}, more: {<<: *b, x: 2}}}").encode(), expect=None
        ),
        # --- characters, sizes, garbage
        Hostile("tab-indentation", valid.replace("  - id: a", "\t- id: a").encode(), expect="line"),
        Hostile("nul-character", with_params('{values: {k: "a\x00b"}}').encode(), expect="character"),
        Hostile("bell-character", with_params("{values: {k: a\x07b}}").encode(), expect="character"),
        Hostile("json-control-character", _json_base('{"k": "a\x01b"}').encode(), ".json", "JSON"),
        Hostile("crlf-line-ends", valid.replace("\n", "\r\n").encode(), expect=None),
        Hostile("huge-scalar", with_params("{values: {k: '" + "x" * (2 << 20) + "'}}").encode(), expect="bytes"),
        Hostile("big-but-allowed-scalar", with_params("{values: {k: '" + "x" * 500_000 + "'}}").encode(), expect=None),
        Hostile("wide-list", with_params("{values: {k: [" + "0," * 400_000 + "0]}}").encode(), expect="values"),
        Hostile("binary-garbage", random.Random(11).randbytes(4096), expect="?"),
        Hostile("binary-garbage-json", random.Random(12).randbytes(4096), ".json", "?"),
        Hostile("empty-file", b"", expect="mapping"),
        Hostile("only-a-comment", b"# nothing here\n", expect="mapping"),
        Hostile("two-documents", (valid + "---\n" + valid).encode(), expect="single document"),
        Hostile("python-tag", with_params("{values: {k: !!python/object:os.system x}}").encode(), expect="tag"),
        Hostile("binary-tag", with_params("{values: {k: !!binary aGVsbG8=}}").encode(), expect="?"),
        Hostile("valid-example", (EXAMPLES / "branching.yaml").read_bytes(), expect=None),
    ]


def _merge_laughs() -> str:
    lines = ["m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol}"]
    for level in range(1, 9):
        refs = ", ".join(f"k{i}: *m{level - 1}" for i in range(8))
        lines.append(f"m{level}: &m{level} {{<<: *m{level - 1}, {refs}}}")
    return with_values_block(lines)


def _alias_depth_chain() -> str:
    """Each anchor nests the previous one 40 levels down: few bytes, expanded depth in the thousands."""
    lines = ["d0: &d0 1"]
    for level in range(1, 60):
        lines.append(f"d{level}: &d{level} " + "[" * 40 + f"*d{level - 1}" + "]" * 40)
    return with_values_block(lines)


# --- seeded mutations of the examples ------------------------------------------------------------

_SNIPPETS = [
    "&a [*a]", "*undefined", "[[[[[[[[", "]]]]", "{{", "}}", "{%", ": :", "- ", "? ", "!!binary ", "!!set ",
    ".nan", "-.inf", "1e999", "1.0e+999", "9" * 400, "\t", "\x00", "\x1b[31m", "\r", "\u2028", "\ufeff",
    "'", '"', "&x ", "*x", "<<: ", "---\n", "...\n", "%YAML 1.1\n", "#", "|", ">", "@", "`", "\\", "\x85",
]  # fmt: skip


def mutants(count: int, seed: int = 11) -> list[Hostile]:
    """``count`` seeded random mutations (bytes flipped, cut, repeated, hostile snippets inserted)
    of examples/*.yaml and of their JSON forms; any outcome but a clear problem or success is a bug."""
    rng = random.Random(seed)
    sources: list[tuple[str, bytes]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        data = path.read_bytes()
        sources.append((".yaml", data))
        sources.append((".json", json.dumps(yaml.safe_load(data), indent=1).encode()))
    result = []
    for number in range(count):
        suffix, data = rng.choice(sources)
        content = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(content) + 1)
            operation = rng.randrange(6)
            if operation == 0 and content:
                content[min(at, len(content) - 1)] = rng.randrange(256)
            elif operation == 1:
                del content[at : at + rng.randint(1, 40)]
            elif operation == 2:
                piece = bytes(content[at : at + rng.randint(1, 80)])
                content[at:at] = piece * rng.randint(2, 50)
            elif operation == 3:
                content[at:at] = rng.choice(_SNIPPETS).encode("utf-8", "surrogatepass") * rng.randint(1, 30)
            elif operation == 4:
                content = content[:at]
            else:
                content[at:at] = rng.randbytes(rng.randint(1, 8))
        result.append(Hostile(f"mutant-{number:03d}", bytes(content), suffix, expect="?"))
    return result
