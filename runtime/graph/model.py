"""The graph model: settings, bound nodes, and the immutable validated Graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from ..node import Node, Params

GRAPH_VERSION = 1
#: ``ui`` is an editor's view state (node positions, the viewer's node and frame): the engine ignores it
TOP_LEVEL_KEYS = {"version", "name", "settings", "nodes", "$schema", "description", "ui"}
NODE_KEYS = {"type", "inputs", "params", "device"}


class Settings(BaseModel):
    """Graph-wide settings; the CLI's ``--device`` and ``--batch-size`` override them."""

    model_config = ConfigDict(extra="forbid")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where nodes run unless a node says otherwise")
    batch_size: int = Field(8, ge=1, le=1024, description="consecutive frames per batch")
    queue_depth: int = Field(4, ge=1, le=64, description="batches buffered between two nodes")


@dataclass
class BoundNode:
    """A node of a validated graph: its class, checked params and resolved links."""

    id: str
    cls: type[Node]
    params: Params  # None only while validation is collecting problems
    device: Literal["auto", "cpu", "cuda"] | None
    #: input port -> (upstream node id, upstream output port)
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Graph:
    """An immutable, validated graph definition; executors run it, never change it."""

    name: str
    path: Path | None
    settings: Settings
    nodes: dict[str, BoundNode]
    order: list[str]
    dag: nx.DiGraph
    hash: str
    document: dict[str, Any]

    def ancestors(self, node_id: str) -> list[str]:
        keep = nx.ancestors(self.dag, node_id) | {node_id}
        return [n for n in self.order if n in keep]

    def consumers(self, node_id: str) -> list[str]:
        return [n for n in self.order if n in self.dag.successors(node_id)]

    def input_prerolls(self, keep: list[str] | None = None) -> dict[str, int]:
        """For each node, how many frames before the first output frame its inputs must cover.

        A stateful node with pre-roll p needs its inputs from p frames before the first
        frame its consumers need, so the pre-rolls add up along each path to a sink and
        the longest path wins: ``need(v) = preroll(v) + max(need(c) for c in consumers)``.
        ``keep`` limits the graph to those nodes (a preview runs only ancestors).
        """
        nodes = self.order if keep is None else [n for n in self.order if n in keep]
        need: dict[str, int] = {}
        for nid in reversed(nodes):
            b = self.nodes[nid]
            after = [need[c] for c in self.consumers(nid) if c in need]
            need[nid] = b.cls.preroll(b.params) + max(after, default=0)
        return need

    def preroll(self, keep: list[str] | None = None) -> int:
        """Frames the sources must emit before the first output frame (see ``input_prerolls``)."""
        return max(self.input_prerolls(keep).values(), default=0)
