"""A render's plan: the sink whose output is joined, chunks on batch boundaries, the key
that says which chunks belong together, and one job per chunk.

Chunks are exact: sources decode the graph's pre-roll before a chunk's first frame and
whole batches, so a chunk's frames are bit for bit those a single run makes (see
``Node.preroll``). Which sinks can be chunked is theirs to say (``Sink.chunk_param``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.runtime.files import can_write, folder_marker
from swapgraph.runtime.graph.model import Graph
from swapgraph.runtime.graph.overrides import parse_override
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import RunContext, Sink, Source
from swapgraph.runtime.registry import default_registry

DEFAULT_CHUNK_SIZE = 96


def output_node(graph: Graph, node: str | None = None) -> str:
    """The sink a render joins: ``node``, or the graph's only sink that can be chunked.
    Every other sink is refused: chunks cannot share its files."""
    sinks = [nid for nid in graph.order if issubclass(graph.nodes[nid].cls, Sink)]
    refusals = {nid: _instance(graph, nid).chunk_refusal() for nid in sinks}
    joinable = [nid for nid in sinks if graph.nodes[nid].cls.chunk_param is not None]
    if node is not None:
        if node not in joinable:
            raise ArgumentError("node", repr(node), "not a node of the graph whose output a render can join; its "
                                "joinable sinks: " + (", ".join(joinable) or "none"))
    elif len(joinable) != 1:
        raise UsageError(f"{graph.path or 'graph'}: a render joins one output, the graph has {len(joinable)} sinks "
                         f"that can be chunked ({', '.join(joinable) or 'none'}); name one as the node to render")
    else:
        node = joinable[0]
    for nid in sinks:
        if nid != node:
            raise UsageError(f"node {nid!r} ({graph.nodes[nid].cls.type_name()}): a render joins one output, and "
                             "chunks cannot share this sink's files; render a graph without it, or run the shot "
                             "whole")
    if refusals[node]:
        raise UsageError(f"node {node!r} ({graph.nodes[node].cls.type_name()}): {refusals[node]}")
    return node


def _instance(graph: Graph, nid: str):
    b = graph.nodes[nid]
    return b.cls(nid, b.params, torch.device("cpu"))


def render_key(graph: Graph, node: str, batch_size: int, device: str | None) -> str:
    """What makes chunks joinable: the graph and its params less the rendered sink's output
    (which differs between a chunk and the render), the batch size and the device."""
    doc = json.loads(json.dumps(graph.document))
    doc["nodes"][node].get("params", {}).pop(graph.nodes[node].cls.chunk_param, None)
    doc["batch_size"] = batch_size
    doc["device"] = device or graph.settings.device
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def range_problems(graph: Graph) -> list[str]:
    """Nodes whose output would depend on where a chunk starts (``Node.range_issues``)."""
    return [f"node {nid!r} ({b.cls.type_name()}) {issue}"
            for nid, b in graph.nodes.items() for issue in _instance(graph, nid).range_issues()]


@dataclass(frozen=True)
class Chunk:
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"chunk-{self.first:06d}-{self.last:06d}"

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def plan_chunks(first: int, last: int, size: int) -> list[Chunk]:
    """Chunks of ``size`` frames covering ``first..last``, on boundaries at multiples of
    ``size`` in frame numbers (so a re-plan of a longer range keeps the chunks it shares)."""
    chunks = []
    start = first
    while start <= last:
        end = min(last, (start // size + 1) * size - 1)
        chunks.append(Chunk(start, end))
        start = end + 1
    return chunks


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to run one chunk, as plain data: the graph document travels
    with the job, so workers need no copy of an edited graph, only the media paths."""

    document: dict[str, Any]  # validated: paths absolute, overrides applied, the sink writing the chunk's file
    graph_path: Path | None  # the graph file, for the provenance
    first: int
    last: int
    manifest: Path
    render_frames: tuple[int, int] | None = None
    batch_size: int | None = None
    device: str | None = None
    node: str | None = None  # the sink joined; None: the graph's only joinable sink


@dataclass
class RenderPlan:
    graph: Graph
    graph_path: Path | None
    overrides: list[str]
    node: str
    out: Path
    chunks_dir: Path
    chunks: list[Chunk]
    key: str
    batch_size: int
    device: str | None
    first: int
    last: int
    suffix: str = ""
    done: set[Chunk] = field(default_factory=set)

    def chunk_output(self, c: Chunk) -> Path:
        return self.chunks_dir / f"{c.name}{self.suffix}"

    def chunk_manifest(self, c: Chunk) -> Path:
        return self.chunks_dir / f"{c.name}.manifest.json"

    def job(self, c: Chunk) -> ChunkJob:
        return ChunkJob(chunk_document(self.graph, self.node, self.chunk_output(c)), self.graph_path, c.first, c.last,
                        self.chunk_manifest(c), (self.first, self.last), self.batch_size, self.device, self.node)

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


def chunk_document(graph: Graph, node: str, output: Path) -> dict[str, Any]:
    """The validated graph's document (paths absolute, overrides applied: the same on any
    machine that sees the media) with ``node`` writing ``output``."""
    doc = json.loads(json.dumps(graph.document))
    doc["name"] = graph.name
    doc["nodes"][node]["params"][graph.nodes[node].cls.chunk_param] = str(output)
    return doc


def _absolute_overrides(graph: Graph, overrides: Sequence[str]) -> list[str]:
    """Overrides with path params made absolute, so a farm worker anywhere reads the same
    files (the graph already resolved them)."""
    out = []
    for text in overrides:
        nid, param, value = parse_override(text)
        b = graph.nodes[nid]
        if param in b.params.path_fields() and value != "null":
            value = str(getattr(b.params, param))
        out.append(f"{nid}.{param}={value}")
    return out


def chunks_folder_problem(folder: Path, inputs: Sequence[Path] = ()) -> str | None:
    """Why a render may not keep its chunks in ``folder``, or None: it must be new, empty,
    or a chunks folder swapgraph made (its marker), and hold no input."""
    folder = Path(os.path.abspath(folder))
    for given in inputs:
        if Path(os.path.abspath(given)).is_relative_to(folder):
            return f"{folder} holds the input {given}; give the render a chunks folder of its own"
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file; give the render a new or empty chunks folder (the default is OUT.chunks)"
    if folder.is_dir() and folder_marker(folder) is None and any(folder.iterdir()):
        return (f"{folder} holds files swapgraph did not write; give the render a new or empty chunks folder "
                "(the default is OUT.chunks)")
    return None


def make_plan(doc: Mapping[str, Any], graph_path: Path | None, overrides: Sequence[str], out: Path, *,
              chunk_size: int, node: str | None = None, frames: tuple[int, int | None] | None = None,
              batch_size: int | None = None, device: str | None = None, chunks_dir: Path | None = None) -> RenderPlan:
    """Validate a graph document (read from ``graph_path``, or edited in memory) for a farm
    and split its shot into chunks."""
    graph_path = Path(graph_path).resolve() if graph_path else None
    graph = validate_graph(doc, default_registry(), path=graph_path, overrides=list(overrides), probe=False)
    node = output_node(graph, node)
    out = Path(out).resolve()
    if not can_write(out.parent):
        raise ArgumentError("out", str(out), "cannot write there (nor make its folder); choose a writable folder")
    # validated again as the render writes it: the output's format must suit its name
    param = graph.nodes[node].cls.chunk_param
    graph = validate_graph(doc, default_registry(), path=graph_path, overrides=[*overrides, f"{node}.{param}={out}"])
    problems = range_problems(graph)
    if problems:
        raise UsageError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    if chunk_size < 1:
        raise ArgumentError("chunk_size", str(chunk_size), "expected a positive number of frames")
    bs = batch_size or graph.settings.batch_size
    # chunk boundaries on whole batches: no chunk decodes a batch only to drop most of it
    size = max(bs, (chunk_size + bs - 1) // bs * bs)
    ctx = RunContext(frame_range=frames, batch_size=bs)
    ranges = [_instance(graph, nid).output_range(ctx) for nid, b in graph.nodes.items() if issubclass(b.cls, Source)]
    ranges = [r for r in ranges if r is not None]
    if not ranges:
        raise UsageError(f"{graph_path or 'graph'}: no source node with a frame range; a render needs a source such as Decode")
    first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
    chunks_dir = Path(chunks_dir).resolve() if chunks_dir else out.with_name(out.name + ".chunks")
    if not can_write(chunks_dir):
        raise ArgumentError("chunks", str(chunks_dir), "cannot write there (nor make it); choose a writable folder")
    problem = chunks_folder_problem(chunks_dir, [p for nid in graph.nodes for p in _instance(graph, nid).input_paths()])
    if problem is not None:
        raise ArgumentError("chunks", str(chunks_dir), problem)
    return RenderPlan(graph=graph, graph_path=graph_path, overrides=_absolute_overrides(graph, overrides), node=node,
                      out=out, chunks_dir=chunks_dir, chunks=plan_chunks(first, last, size),
                      key=render_key(graph, node, bs, device), batch_size=bs, device=device, first=first, last=last,
                      suffix=out.suffix)
