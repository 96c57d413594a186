"""Node plugins: installed packages that add node types through the ``switchboard.nodes``
entry point group.

A plugin's ``pyproject.toml`` names a module (imported: its ``@node`` decorators register) or
a callable (called with no arguments; it registers nodes)::

    [project.entry-points."switchboard.nodes"]
    acme = "acme_switchboard.nodes"

:func:`load_plugins` loads every entry point once per process; ``import switchboard`` calls
it, so the CLI, the bot, the workers and the deployment entrypoint all have the same nodes.
A plugin that fails to load is reported by name with its error (``switchboard nodes``,
``switchboard doctor``) and the others load regardless.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType

from nodes.registry import REGISTRY, Registry

#: The entry point group plugins register node types under.
ENTRY_POINT_GROUP = "switchboard.nodes"

logger = logging.getLogger("switchboard.plugins")


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group, loaded or not."""

    name: str
    value: str
    package: str | None
    version: str | None
    types: tuple[str, ...] = ()
    #: Why it did not load (None: it loaded).
    error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.error is None


@dataclass
class _Loaded:
    done: bool = False
    plugins: list[Plugin] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATE = _Loaded()


def load_plugins(registry: Registry = REGISTRY) -> list[Plugin]:
    """Load every installed plugin (once per process) and return what each one did."""
    with _STATE.lock:
        if not _STATE.done:
            _STATE.plugins = [_load(entry, registry) for entry in _entry_points()]
            _STATE.done = True
        return list(_STATE.plugins)


def loaded_plugins() -> list[Plugin]:
    """The plugins :func:`load_plugins` loaded (empty before it ran)."""
    return list(_STATE.plugins)


def failed_plugins() -> list[Plugin]:
    """The plugins that did not load in this process."""
    return [plugin for plugin in _STATE.plugins if not plugin.loaded]


def _entry_points() -> list[metadata.EntryPoint]:
    # One entry per name: a package installed twice on the path is listed once.
    unique = {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return [unique[name] for name in sorted(unique)]


def _load(entry: metadata.EntryPoint, registry: Registry) -> Plugin:
    package = entry.dist.name if entry.dist is not None else None
    version = entry.dist.version if entry.dist is not None else None
    before = set(registry.types())
    try:
        with registry.registering_for(package or entry.name, version):
            loaded = entry.load()
            if not isinstance(loaded, ModuleType):
                if not callable(loaded):
                    raise TypeError(f"{entry.value} is neither a module nor a callable")
                loaded()
    except Exception as exc:  # a broken plugin must not take the others (or the process) down
        error = f"{type(exc).__name__}: {exc}"
        logger.warning("node plugin %r (%s) did not load: %s", entry.name, entry.value, error)
        return Plugin(entry.name, entry.value, package, version, error=error)
    added = tuple(sorted(set(registry.types()) - before))
    return Plugin(entry.name, entry.value, package, version, types=added)
