"""Running a graph, previewing one node, and running one chunk of a render."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import torch

from swapgraph.farm.manifests import write_manifest
from swapgraph.farm.plan import ChunkJob, output_node, range_problems, render_key
from swapgraph.runtime.errors import ArgumentError
from swapgraph.runtime.executor import CancelToken, Executor
from swapgraph.runtime.graph.model import Graph
from swapgraph.nodes.video.decode import Decode
from swapgraph.nodes.video.probe import probe_video
from swapgraph.runtime.images import encode_png, write_png
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.preview import PreviewCache, evaluate_at
from swapgraph.runtime.registry import default_registry

from .graphs import GraphSpec, load

Progress = Callable[[int, int | None], None]


@dataclass
class RunReport:
    """What a run did: frames out, seconds, per-node seconds and counts, the files written,
    the summary recorded in sidecars; ``manifest`` for a chunk of a render."""

    frames: int
    seconds: float
    node_seconds: dict[str, float]
    outputs: list[Path]
    stats: dict[str, dict[str, Any]]
    summary: dict[str, Any]
    manifest: dict[str, Any] | None = None


def _execute(graph: Graph, *, frames: tuple[int, int | None] | None, device: str | None, batch_size: int | None,
             progress: Progress | None, cancel: CancelToken | None, cpus: int | None) -> tuple[Executor, RunReport]:
    if batch_size is not None and not 1 <= batch_size <= 1024:
        raise ArgumentError("batch_size", str(batch_size), "expected 1..1024")
    executor = Executor(graph, device=device, batch_size=batch_size, frame_range=frames, cpus=cpus,
                        on_progress=progress, cancel=cancel)
    result = executor.run()
    return executor, RunReport(result.frames, result.seconds, result.node_seconds, result.outputs, result.stats,
                               executor.ctx.summary)


def run(spec: GraphSpec | str | Path, *, frames: tuple[int, int | None] | None = None, device: str | None = None,
        batch_size: int | None = None, progress: Progress | None = None, cancel: CancelToken | None = None,
        warn: Callable[[str], None] | None = None, cpus: int | None = None) -> RunReport:
    """Validate and run a graph; outputs appear at their paths only when the whole run succeeded.

    ``frames``: (first, last) inclusive, 0-based; last None = to the end. A range renders
    those frames exactly as the whole shot would (sources decode the pre-roll before it).
    ``progress(done, total)`` is called from the run's thread; ``cancel.cancel()`` stops
    the run (``Cancelled`` is raised, nothing is written). ``warn`` gets one line per node
    whose output depends on where a range starts.
    """
    graph = load(spec).graph()
    if frames is not None and warn is not None:
        for problem in range_problems(graph):
            warn(problem)
    return _execute(graph, frames=frames, device=device, batch_size=batch_size, progress=progress, cancel=cancel,
                    cpus=cpus)[1]


def run_chunk(job: ChunkJob, *, cpus: int | None = None, run_id: str = "", progress: Progress | None = None,
              cancel: CancelToken | None = None) -> RunReport:
    """Run one chunk of a render and write its manifest: what a farm worker does (and
    ``swapgraph run --manifest``). The manifest is written only after the run committed."""
    graph = validate_graph(job.document, default_registry(), path=job.graph_path)
    node = output_node(graph, job.node)
    executor, report = _execute(graph, frames=(job.first, job.last), device=job.device, batch_size=job.batch_size,
                                progress=progress, cancel=cancel, cpus=cpus)
    record = executor.nodes[node].chunk_record()
    report.manifest = write_manifest(job.manifest, graph, node, record, report.summary,
                                     key=render_key(graph, node, executor.ctx.batch_size, job.device),
                                     render_frames=job.render_frames, run_id=run_id)
    return report


@dataclass
class Preview:
    """One node's outputs for one frame: ``image`` (RGB (3, H, W) in [0, 1]: frames as they
    are, faces drawn on their frame, crops and masks as a grid; None when no output has an
    image) and ``outputs``, the node's port values for the batch that holds the frame;
    ``shown``: the port whose image it is."""

    node: str
    frame: int
    image: torch.Tensor | None
    outputs: dict[str, Any] = field(default_factory=dict)
    shown: str | None = None

    def save(self, path: Path) -> Path:
        """Write the image as an 8-bit PNG, whole or not at all."""
        write_png(Path(path), self._image())
        return Path(path)

    def png(self) -> bytes:
        """The image as the bytes of the 8-bit PNG that ``save`` writes."""
        return encode_png(self._image())

    def _image(self) -> torch.Tensor:
        if self.image is None:
            raise ArgumentError("node", repr(self.node), f"has no image for frame {self.frame}; check the frame "
                                "number (0-based) and pick a node with a frames, faces, crops or masks output")
        return self.image


_CACHE: PreviewCache | None = None


def preview_cache() -> PreviewCache:
    """The process's preview cache (bounded; least recently used out), shared by every
    preview that passes no cache of its own."""
    global _CACHE
    if _CACHE is None:
        _CACHE = PreviewCache()
    return _CACHE


def preview(spec: GraphSpec | str | Path, node: str, frame: int, *, output: str | None = None,
            device: str | None = None, cache: PreviewCache | None = None) -> Preview:
    """Evaluate ``node`` at ``frame`` (0-based): only its ancestors run, from the pre-roll
    its stateful ancestors need, and what an earlier preview computed with the same
    upstream params and frames is reused from the cache. A sink shows its inputs.
    ``output`` picks the port whose image is shown (default: the first with one)."""
    graph = load(spec).graph()
    if node not in graph.nodes:
        raise ArgumentError("node", repr(node), "no such node; the graph has " + ", ".join(graph.order))
    for nid in graph.ancestors(node):
        bound = graph.nodes[nid]
        if issubclass(bound.cls, Decode):
            count = len(probe_video(bound.params.path).pts)
            if not 0 <= frame < count:
                raise ArgumentError("frame", str(frame), f"{'before the start' if frame < 0 else 'past the end'} of "
                                    f"{bound.params.path}: the clip has {count} frames (0-{count - 1}); give a frame "
                                    f"in 0-{count - 1}")
    if frame < 0:
        raise ArgumentError("frame", str(frame), "frames are numbered from 0; give a frame of the shot")
    outputs = evaluate_at(graph, node, frame, device=device, cache=preview_cache() if cache is None else cache)
    if output is not None and output not in outputs:
        raise ArgumentError("output", repr(output), f"node {node!r} has the outputs " + ", ".join(outputs))
    image, shown = None, None
    for name, value in outputs.items():
        if output is not None and name != output:
            continue
        image = value.preview_image(frame) if hasattr(value, "preview_image") else None
        if image is not None:
            shown = name
            break
    return Preview(node, frame, image, outputs, shown)


@dataclass(frozen=True)
class ShotInfo:
    """The shot a node works on: its source node (the first Decode among its ancestors),
    the file, how many frames it has (0-based frame numbers below ``frames``), its rate
    and size (upright)."""

    node: str
    source: Path
    frames: int
    fps: Fraction
    width: int
    height: int


@dataclass(frozen=True)
class MediaInfo:
    """A video file as an editor's timeline uses it: frames (0-based indexes below
    ``frames``), rate, upright size, and the start timecode the file carries (or None)."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    timecode: str | None


def media_info(path: str | Path) -> MediaInfo:
    """Probe a video file (MediaError, one line, when it is not one)."""
    index = probe_video(Path(path))
    info = index.info
    return MediaInfo(Path(path), len(index.pts), info.fps, info.width, info.height, info.timecode)


def shot_info(spec: GraphSpec | str | Path, node: str) -> ShotInfo:
    """The shot ``node`` reads (its first Decode ancestor): the frames a viewer scrubs over."""
    graph = load(spec).graph()
    if node not in graph.nodes:
        raise ArgumentError("node", repr(node), "no such node; the graph has " + ", ".join(graph.order))
    for nid in graph.ancestors(node):
        bound = graph.nodes[nid]
        if issubclass(bound.cls, Decode):
            index = probe_video(bound.params.path)
            return ShotInfo(nid, Path(bound.params.path), len(index.pts), index.info.fps, index.info.width,
                            index.info.height)
    raise ArgumentError("node", repr(node), "reads no video (no Decode node upstream); pick a node downstream "
                        "of a Decode")
