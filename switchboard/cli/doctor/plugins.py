"""Doctor's node plugin check: every installed ``switchboard.nodes`` entry point loaded."""

from __future__ import annotations

from nodes.plugins import ENTRY_POINT_GROUP, loaded_plugins
from switchboard.cli.doctor.checks import Check


def plugins() -> Check:
    """One check for all plugins: which loaded (and their node types), which did not and why."""
    found = loaded_plugins()
    if not found:
        return Check("node plugins", "info", f"none installed (entry point group `{ENTRY_POINT_GROUP}`)")
    broken = [plugin for plugin in found if not plugin.loaded]
    loaded = ", ".join(
        f"{plugin.name} ({plugin.package} {plugin.version}: {', '.join(plugin.types) or 'no node types'})"
        for plugin in found
        if plugin.loaded
    )
    if not broken:
        return Check("node plugins", "ok", f"loaded {loaded}")
    failures = "; ".join(f"{plugin.name} ({plugin.value}): {plugin.error}" for plugin in broken)
    return Check(
        "node plugins",
        "fail",
        f"did not load: {failures}" + (f"; loaded {loaded}" if loaded else ""),
        fix="fix or uninstall the plugin's package (`pip show` names it); "
        "runs needing its node types fail before they start",
    )
