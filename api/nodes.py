"""The node types installed (built-ins and plugins), the graph files' JSON Schema, frame ranges."""

from __future__ import annotations

from typing import Any

from swapgraph.runtime.errors import ArgumentError
from swapgraph.runtime.graph.schema import graph_json_schema
from swapgraph.runtime.node import Node, parse_frame_range
from swapgraph.runtime.registry import default_registry


def node_types() -> dict[str, type[Node]]:
    """Every node type by its graph ``type`` name; a class's ``schema`` declares its ports,
    params, devices and category, its docstring says what it does."""
    return dict(default_registry().items())


def node_origin(name: str) -> str:
    """Which package a node type comes from: ``swapgraph``, or the plugin's entry point."""
    registry = default_registry()
    registry.get(name)
    return registry.origin(name)


def graph_schema() -> dict[str, Any]:
    """The JSON Schema of graph files for the node types installed (editors complete and check with it)."""
    return graph_json_schema(default_registry())


def parse_frames(text: str) -> tuple[int, int | None]:
    """``"A-B"`` (inclusive, 0-based), ``"A-"`` (to the end) or ``"A"`` as a frame range."""
    try:
        return parse_frame_range(text)
    except ValueError as exc:
        raise ArgumentError("frames", text, str(exc)) from None
