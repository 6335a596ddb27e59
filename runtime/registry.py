"""The node registry: node types found through an entry-point group.

swapgraph's own node types and other installed packages' are found under the entry-point group
``swapgraph.nodes``; an entry point names a :class:`Node` subclass or a list of them:

    [project.entry-points."swapgraph.nodes"]
    studio = "studio_nodes:NODES"
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Iterable

from .errors import RegistryError, did_you_mean
from .node import Node

ENTRY_POINT_GROUP = "swapgraph.nodes"


class Registry:
    """Maps graph ``type`` names to node classes."""

    def __init__(self, nodes: Iterable[type[Node]] = ()) -> None:
        self._types: dict[str, type[Node]] = {}
        self._origin: dict[str, str] = {}
        for cls in nodes:
            self.register(cls)

    def register(self, cls: type[Node], origin: str = "swapgraph") -> None:
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise RegistryError(f"{origin}: {cls!r} is not a swapgraph Node subclass")
        name = cls.type_name()
        if name in self._types and self._types[name] is not cls:
            raise RegistryError(
                f"node type {name!r} from {origin} clashes with the one from "
                f"{self._origin[name]}; rename one of the classes")
        self._types[name] = cls
        self._origin[name] = origin

    def load_entry_points(self) -> list[str]:
        """Register the node types of every installed package (swapgraph's own built-ins
        too); returns one warning line per plugin that failed."""
        warnings = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            own = ep.dist is not None and ep.dist.name == "swapgraph"
            origin = "swapgraph" if own else f"plugin {ep.name!r} ({ep.value})"
            try:
                obj = ep.load()
                classes = list(obj) if isinstance(obj, (list, tuple)) else [obj]
                for cls in classes:
                    self.register(cls, origin)
            except Exception as exc:
                if own:  # swapgraph's own nodes failing to load is a broken install, not a plugin's fault
                    raise
                warnings.append(f"{origin} not loaded: {type(exc).__name__}: {exc}")  # a broken plugin must not break swapgraph
        return warnings

    def get(self, name: str) -> type[Node]:
        try:
            return self._types[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        hint = did_you_mean(name, self._types) or "see `swapgraph nodes` for the list"
        return f"unknown node type {name!r}; {hint}"

    def origin(self, name: str) -> str:
        return self._origin[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def items(self) -> list[tuple[str, type[Node]]]:
        return sorted(self._types.items())


_default: Registry | None = None


def default_registry() -> Registry:
    """Every node type installed under the entry-point group: swapgraph's built-ins and
    the plugins (loaded once per process)."""
    global _default
    if _default is None:
        registry = Registry()
        if not any(ep.dist is not None and ep.dist.name == "swapgraph"
                   for ep in entry_points(group=ENTRY_POINT_GROUP)):
            raise RegistryError("swapgraph's built-in nodes are not registered (no 'swapgraph.nodes' entry "
                                "point from swapgraph); reinstall it: pip install -e .")
        for line in registry.load_entry_points():
            print(f"warning: {line}", file=sys.stderr)
        _default = registry
    return _default
