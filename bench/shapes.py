"""Generators of workflow definitions (plain dicts) shared by the benchmarks.

* :func:`realistic` — a large workflow of realistic shape for the planner benchmark: a mix of
  ``core.set``, ``core.if`` with ``needs: ["<id>:true"]`` / ``":false"`` branches, ``core.merge``
  joins, ``text.template`` and ``for_each`` nodes. Every templated string is distinct (it names
  different node ids and carries the node's number), so the template parse cache cannot make
  planning trivial.
* :func:`chain`, :func:`parallel`, :func:`layered` — the light-node shapes of the overhead
  benchmark, with a description of the same work for the hand-written baselines.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Definition = dict[str, Any]

#: Nodes per block of :func:`realistic` (its node count is rounded up to whole blocks).
BLOCK = 10


def _nid(index: int) -> str:
    return f"n{index}"


def realistic(n_nodes: int, *, seed: int = 7) -> Definition:
    """A workflow of about ``n_nodes`` nodes (a multiple of 10) that plans and runs.

    Each block of ten nodes ``b+0 .. b+9``:

    ====  ==================  ====================================================
    b+0   core.set            literal values plus a reference to an earlier block
    b+1   text.template       reads b+0
    b+2   core.if             condition on b+0
    b+3   text.template       ``needs: [b+2:true]`` (true branch)
    b+4   text.template       ``needs: [b+2:false]`` (false branch)
    b+5   core.merge any      joins b+3 / b+4
    b+6   text.template       ``for_each`` over b+0's rows
    b+7   core.set            reads b+6 and a random earlier block's b+1
    b+8   text.template       reads a random earlier node that always runs (long edge)
    b+9   core.set            reads b+7 and b+8
    ====  ==================  ====================================================
    """
    rng = random.Random(seed)
    blocks = max(1, -(-n_nodes // BLOCK))
    nodes: list[dict[str, Any]] = []
    # Nodes that always run (never on a branch) and output a ``text`` field: safe long-range refs.
    texts: list[int] = []
    for block in range(blocks):
        b = block * BLOCK
        earlier = _nid(rng.choice(texts)) if texts else None
        set_values: dict[str, Any] = {
            "n": block,
            "rows": [block, block + 1, block + 2],
            "label": f"block {block} of {{{{ inputs.prefix }}}}",
        }
        if earlier is not None:
            set_values["after"] = f"{{{{ nodes.{earlier}.output.text | upper }}}} ({block})"
        nodes.append({"id": _nid(b), "type": "core.set", "params": {"values": set_values}})
        nodes.append(
            {
                "id": _nid(b + 1),
                "type": "text.template",
                "params": {"template": f"#{block}: {{{{ nodes.{_nid(b)}.output.label }}}} / {{{{ inputs.prefix }}}}"},
            }
        )
        nodes.append(
            {
                "id": _nid(b + 2),
                "type": "core.if",
                "params": {"condition": f"{{{{ nodes.{_nid(b)}.output.n % 2 == {block % 2} }}}}"},
            }
        )
        nodes.append(
            {
                "id": _nid(b + 3),
                "type": "text.template",
                "needs": [f"{_nid(b + 2)}:true"],
                "params": {"template": f"even {block}: {{{{ nodes.{_nid(b + 1)}.output.text }}}}"},
            }
        )
        nodes.append(
            {
                "id": _nid(b + 4),
                "type": "text.template",
                "needs": [f"{_nid(b + 2)}:false"],
                "params": {"template": f"odd {block}: {{{{ nodes.{_nid(b + 1)}.output.text | lower }}}}"},
            }
        )
        nodes.append(
            {
                "id": _nid(b + 5),
                "type": "core.merge",
                "needs": [_nid(b + 3), _nid(b + 4)],
                "params": {"mode": "any"},
            }
        )
        nodes.append(
            {
                "id": _nid(b + 6),
                "type": "text.template",
                "for_each": f"{{{{ nodes.{_nid(b)}.output.rows }}}}",
                "concurrency": 4,
                "params": {
                    "template": (
                        f"{{{{ nodes.{_nid(b + 1)}.output.text }}}} item {{{{ item }}}} #{{{{ index }}}} ({block})"
                    )
                },
            }
        )
        long_ref = _nid(rng.choice(texts)) if texts else _nid(b + 1)
        nodes.append(
            {
                "id": _nid(b + 7),
                "type": "core.set",
                "params": {
                    "values": {
                        "count": f"{{{{ nodes.{_nid(b + 6)}.output | length }}}}",
                        "first": f"{{{{ nodes.{_nid(b + 6)}.output[0].text }}}}",
                        "from": f"{{{{ nodes.{long_ref}.output.text }}}} [{block}]",
                    }
                },
            }
        )
        far = _nid(rng.choice(texts)) if texts else _nid(b + 1)
        nodes.append(
            {
                "id": _nid(b + 8),
                "type": "text.template",
                "params": {
                    "template": (
                        f"{{% if nodes.{_nid(b + 5)}.status == 'completed' %}}merged{{% endif %}} "
                        f"{{{{ nodes.{far}.output.text }}}} #{block}"
                    )
                },
            }
        )
        nodes.append(
            {
                "id": _nid(b + 9),
                "type": "core.set",
                "params": {
                    "values": {
                        "summary": (
                            f"{{{{ nodes.{_nid(b + 7)}.output.count }}}} × {{{{ nodes.{_nid(b + 8)}.output.text }}}}"
                        ),
                        "block": block,
                    }
                },
            }
        )
        texts.extend([b + 1, b + 8])
    return {
        "name": f"bench-realistic-{blocks * BLOCK}",
        "inputs": {"prefix": {"type": "string", "default": "bench"}},
        "nodes": nodes,
    }


# --- overhead shapes -----------------------------------------------------------------------

#: ``layers[k]`` lists the node ids of layer ``k``; every node of a layer depends on every node
#: of the previous one. A chain is 40 layers of one, a fan-out is one layer of 40.
Layers = list[list[str]]


def chain(n: int = 40) -> tuple[Definition, Layers]:
    """``n`` light nodes, each reading the previous one (alternating set / template)."""
    nodes: list[dict[str, Any]] = [{"id": "c0", "type": "core.set", "params": {"values": {"v": "start"}}}]
    for i in range(1, n):
        prev = f"c{i - 1}"
        if i % 2:
            nodes.append(
                {"id": f"c{i}", "type": "text.template", "params": {"template": f"{{{{ nodes.{prev}.output.v }}}}+{i}"}}
            )
        else:
            nodes.append(
                {"id": f"c{i}", "type": "core.set", "params": {"values": {"v": f"{{{{ nodes.{prev}.output.text }}}}"}}}
            )
    return {"name": f"bench-chain-{n}", "nodes": nodes}, [[f"c{i}"] for i in range(n)]


def parallel(n: int = 40) -> tuple[Definition, Layers]:
    """``n`` independent light nodes (alternating set / template reading an input)."""
    nodes: list[dict[str, Any]] = []
    for i in range(n):
        if i % 2:
            nodes.append(
                {"id": f"p{i}", "type": "text.template", "params": {"template": f"{{{{ inputs.prefix }}}}-{i}"}}
            )
        else:
            nodes.append(
                {"id": f"p{i}", "type": "core.set", "params": {"values": {"v": f"{{{{ inputs.prefix }}}}-{i}"}}}
            )
    definition = {
        "name": f"bench-parallel-{n}",
        "inputs": {"prefix": {"type": "string", "default": "p"}},
        "nodes": nodes,
    }
    return definition, [[f"p{i}" for i in range(n)]]


def layered(width: int = 10, depth: int = 10) -> tuple[Definition, Layers]:
    """``depth`` layers of ``width`` templates; each node ``needs`` every node of the layer before."""
    nodes: list[dict[str, Any]] = []
    layers: Layers = []
    for k in range(depth):
        ids = [f"L{k}_{j}" for j in range(width)]
        for j, node_id in enumerate(ids):
            node: dict[str, Any] = {"id": node_id, "type": "text.template"}
            if k == 0:
                node["params"] = {"template": f"L{k}.{j}"}
            else:
                node["needs"] = list(layers[-1])
                node["params"] = {"template": f"L{k}.{j} after {{{{ nodes.L{k - 1}_{j}.output.text[:12] }}}}"}
            nodes.append(node)
        layers.append(ids)
    return {"name": f"bench-layered-{width}x{depth}", "nodes": nodes}, layers


OVERHEAD_SHAPES: dict[str, Callable[[], tuple[Definition, Layers]]] = {
    "chain 40": chain,
    "parallel 40": parallel,
    "layered 10x10": layered,
}
