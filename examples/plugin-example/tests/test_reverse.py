"""The plugin's node, run by Switchboard's runner as any installed node is."""

from __future__ import annotations

import switchboard


def test_reverse_runs_in_a_workflow() -> None:
    result = switchboard.run(
        {
            "name": "reverse-demo",
            "outputs": {"reversed": "{{ nodes.flip.output.text }}"},
            "nodes": [{"id": "flip", "type": "example.reverse", "params": {"text": "Switchboard", "upper": True}}],
        },
        record=False,
    )
    assert result.status == "completed", result.error
    assert result.outputs == {"reversed": "DRAOBHCTIWS"}
