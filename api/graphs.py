"""Graphs as the Python API takes them: a document, where it came from, its overrides."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from swapgraph.runtime.errors import GraphValidationError
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.model import Graph
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import Issue
from swapgraph.runtime.registry import default_registry

Overrides = Sequence[str] | Mapping[str, Any]


@dataclass(frozen=True)
class GraphSpec:
    """A graph not yet validated: its document (JSON data), the file it came from (relative
    paths resolve against its folder; None: the working folder) and overrides
    (``"node.param=value"``, typed by the param's schema). Every call of the API takes one;
    ``with_params`` and ``with_overrides`` make edited copies, as an editor does."""

    document: Mapping[str, Any]
    path: Path | None = None
    overrides: tuple[str, ...] = field(default=())

    def graph(self, *, probe: bool = True) -> Graph:
        """The validated graph; raises ``GraphValidationError`` with every problem at once.
        ``probe`` also opens input media."""
        return validate_graph(self.document, default_registry(), path=self.path, overrides=list(self.overrides),
                              probe=probe)

    def with_overrides(self, overrides: Overrides) -> GraphSpec:
        return replace(self, overrides=(*self.overrides, *_override_texts(overrides)))

    def with_params(self, node: str, **params: Any) -> GraphSpec:
        """A copy whose document gives ``node`` these params (JSON values)."""
        doc = copy.deepcopy(dict(self.document))
        spec = doc.get("nodes", {}).get(node)
        if not isinstance(spec, dict):
            raise KeyError(f"no node {node!r} in the graph")
        spec.setdefault("params", {}).update(params)
        return replace(self, document=doc)


def _override_texts(overrides: Overrides) -> list[str]:
    if isinstance(overrides, Mapping):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return list(overrides)


def load(source: str | Path | Mapping[str, Any] | GraphSpec, overrides: Overrides = (), *,
         path: Path | None = None) -> GraphSpec:
    """A graph from a file (``str``/``Path``) or a document (a dict; ``path`` says where its
    relative paths resolve), with overrides: ``["plate.path=a.mp4"]`` or ``{"plate.path": "a.mp4"}``.
    Raises ``GraphFileError`` when the file is not a graph file."""
    if isinstance(source, GraphSpec):
        return source.with_overrides(overrides)
    if isinstance(source, Mapping):
        return GraphSpec(copy.deepcopy(dict(source)), Path(path) if path else None, tuple(_override_texts(overrides)))
    file = Path(source)
    return GraphSpec(load_graph_document(file), file, tuple(_override_texts(overrides)))


def validate(spec: GraphSpec | str | Path | Mapping[str, Any], *, probe: bool = True) -> list[Issue]:
    """Every problem of the graph (empty: it can run), found without running it."""
    try:
        load(spec).graph(probe=probe)
    except GraphValidationError as exc:
        return list(exc.issues)
    return []
