"""swapgraph's engine: port types, nodes and registry, graph files, executor, CLI."""

from __future__ import annotations

from .errors import SwapgraphError
from .graph import Graph, graph_json_schema, load_graph_document, validate_graph
from .node import Node, NodeSchema, Params, Port, Sink, Source
from .ports import Audio, Frames, PortType, VideoInfo
from .provenance import swapgraph_version

__version__ = swapgraph_version()

__all__ = ["Audio", "Frames", "Graph", "Node", "NodeSchema", "Params", "Port", "PortType", "Sink", "Source",
           "SwapgraphError", "VideoInfo", "graph_json_schema", "load_graph_document", "validate_graph"]
