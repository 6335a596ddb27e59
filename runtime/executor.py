"""The streaming executor: every node a stage, stages joined by bounded queues.

Sources emit batches of consecutive frames; each node runs in its own thread, takes one
batch from each upstream queue, processes it and hands the result to every downstream
queue. Queues hold at most ``queue_depth`` batches, so memory is bounded by batch size
and queue depth, never by the length of the shot. Decode, CPU nodes, GPU nodes and
Encode therefore overlap, and a graph runs at about the speed of its slowest stage
(PyAV, OpenCV and torch release the GIL in their heavy calls).

The executor knows nothing of what a node computes: it moves values between threads,
moves tensors where a link crosses devices, times nodes, and decides between ``commit``
(every stage finished) and ``abort`` (a failure, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .devices import resolve_device
from .errors import Cancelled, NodeError, SwapgraphError
from .graph import Graph
from .node import Node, RunContext, Sink, Source
from .ports import Frames, PortType, move

_END = object()
_SKIP = object()  # a batch wholly outside what a node needs: passed on so stages stay in step


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was cancelled."""


class _Channel:
    def __init__(self, depth: int, stop: threading.Event) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = stop

    def put(self, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self._q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return self._q.get(timeout=0.05)
            except queue.Empty:
                continue


@contextlib.contextmanager
def torch_threads_shared_by(stages: int, cores: int | None = None) -> Iterator[None]:
    """Give torch ``cores / stages`` intra-op threads (at least one) for the duration.

    Every stage is a thread that can keep a core busy; torch's own idle intra-op threads
    would spin-wait on the same cores between kernels, so CPU stages share the cores
    (``cores``: this run's share of the machine, all of it by default).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (cores or os.cpu_count() or 1) // max(1, stages)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class RunResult:
    frames: int
    seconds: float
    node_seconds: dict[str, float]
    outputs: list[Path] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)


def _frames_in(values: dict[str, Any]) -> int:
    return max((v.frames_in_batch() for v in values.values() if isinstance(v, PortType)), default=0)


def _frame_numbers(values: dict[str, Any]) -> list[int] | None:
    for v in values.values():
        numbers = v.frame_numbers() if isinstance(v, PortType) else None
        if numbers:
            return numbers
    return None


class Executor:
    """Runs a validated :class:`Graph` once, streaming."""

    def __init__(self, graph: Graph, *, device: str | None = None, batch_size: int | None = None,
                 frame_range: tuple[int, int | None] | None = None, cpus: int | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None) -> None:
        self.graph = graph
        requested = device or graph.settings.device
        #: frames before the first output frame each node's inputs must cover (the rest is skipped)
        self.need = graph.input_prerolls()
        self.ctx = RunContext(frame_range=frame_range, batch_size=batch_size or graph.settings.batch_size,
                              graph_hash=graph.hash, graph_name=graph.name, graph_path=graph.path,
                              preroll=max(self.need.values(), default=0), cpus=cpus or os.cpu_count() or 1)
        self.nodes: dict[str, Node] = {
            nid: b.cls(nid, b.params, resolve_device(requested, b.device, b.cls.schema.devices))
            for nid, b in graph.nodes.items()
        }
        self.on_progress = on_progress
        self.node_seconds = {nid: 0.0 for nid in graph.order}
        self.node_frames = {nid: 0 for nid in graph.order}

    def total_frames(self) -> int | None:
        counts = [n.frame_count(self.ctx) for n in self.nodes.values() if isinstance(n, Source)]
        counts = [c for c in counts if c is not None]
        return min(counts) if counts else None

    def output_range(self) -> tuple[int, int | None] | None:
        """The frames sinks get: what the sources report (``--frames``, or their own params)."""
        ranges = [r for n in self.nodes.values() if isinstance(n, Source) and (r := n.output_range(self.ctx))]
        if not ranges:
            return None
        ends = [b for _, b in ranges]
        return min(a for a, _ in ranges), None if None in ends else max(ends)

    def run(self) -> RunResult:
        g = self.graph
        stop = threading.Event()
        channels = {(u, v): _Channel(g.settings.queue_depth, stop) for u, v in g.dag.edges}
        errors: list[tuple[str, BaseException]] = []
        started = time.perf_counter()

        for nid in g.order:
            self.nodes[nid].open(self.ctx)
        total = self.total_frames()
        out_range = self.output_range()
        first, last = out_range if out_range else (None, None)

        def stage(nid: str) -> None:
            node = self.nodes[nid]
            bound = g.nodes[nid]
            outs = [channels[(nid, v)] for v in g.consumers(nid)]
            ins = {u: channels[(u, nid)] for u in g.dag.predecessors(nid)}
            try:
                if isinstance(node, Source):
                    it = iter(node.batches(self.ctx))
                    while True:
                        t0 = time.perf_counter()
                        out = next(it, _END)
                        self.node_seconds[nid] += time.perf_counter() - t0
                        if out is _END:
                            break
                        self.node_frames[nid] += _frames_in(out)
                        for ch in outs:
                            ch.put(out)
                else:
                    lowest = None if first is None else first - self.need[nid]
                    while True:
                        got = {u: ch.get() for u, ch in ins.items()}
                        if any(v is _END for v in got.values()):
                            break
                        if any(v is _SKIP for v in got.values()):
                            for ch in outs:
                                ch.put(_SKIP)
                            continue
                        inputs = {port: got[src][sport] for port, (src, sport) in bound.inputs.items()}
                        numbers = _frame_numbers(inputs)
                        if lowest is not None and numbers and numbers[-1] < lowest:
                            # pre-roll this node does not need: skipped whole, so every batch a
                            # node does process is the one a whole run gives it
                            for ch in outs:
                                ch.put(_SKIP)
                            continue
                        if isinstance(node, Sink) and first is not None:
                            inputs = {k: v.keep_frames(first, last) if isinstance(v, PortType) else v
                                      for k, v in inputs.items()}
                            if any(v is None for v in inputs.values()):
                                continue
                        inputs = {k: move(v, node.device) for k, v in inputs.items()}
                        t0 = time.perf_counter()
                        out = node.process(**inputs)
                        self.node_seconds[nid] += time.perf_counter() - t0
                        self.node_frames[nid] += _frames_in(inputs)
                        for ch in outs:
                            ch.put(out)
                t0 = time.perf_counter()
                node.finish()
                self.node_seconds[nid] += time.perf_counter() - t0
                for ch in outs:
                    ch.put(_END)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append((nid, exc))
                stop.set()

        threads = [threading.Thread(target=stage, args=(nid,), name=f"swapgraph:{nid}", daemon=True)
                   for nid in g.order]
        leaves = [nid for nid in g.order if g.dag.out_degree(nid) == 0]
        cancelled = False
        with torch_threads_shared_by(sum(1 for n in self.nodes.values() if n.device.type == "cpu"), self.ctx.cpus):
            try:
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    for t in threads:
                        t.join(timeout=0.1)
                        if self.on_progress:
                            self.on_progress(min(self.node_frames[n] for n in leaves), total)
            except KeyboardInterrupt:
                cancelled = True
                stop.set()
                for t in threads:
                    t.join()
        if self.on_progress:
            self.on_progress(min(self.node_frames[n] for n in leaves), total)

        if cancelled or errors:
            for node in self.nodes.values():
                try:
                    node.abort()
                except Exception as exc:  # keep cleaning the others
                    print(f"warning: cleaning up node {node.id!r}: {exc}", file=sys.stderr)
            if cancelled:
                raise Cancelled("run cancelled; no output was written")
            nid, exc = errors[0]
            if isinstance(exc, SwapgraphError):
                raise exc
            if isinstance(exc, KeyboardInterrupt):
                raise Cancelled("run cancelled; no output was written")
            raise NodeError(f"node {nid!r} ({g.nodes[nid].cls.type_name()}) failed: "
                            f"{type(exc).__name__}: {exc}") from exc

        seconds = time.perf_counter() - started
        frames = min(self.node_frames[n] for n in leaves) if leaves else 0
        stats = {nid: n.stats() for nid, n in self.nodes.items() if n.stats()}
        self.ctx.summary = {
            "frames": frames,
            "seconds": round(seconds, 3),
            "node_seconds": {k: round(v, 4) for k, v in self.node_seconds.items()},
            "node_devices": {nid: str(n.device) for nid, n in self.nodes.items()},
            "stats": stats,
            "params": {nid: b.params.model_dump(mode="json") for nid, b in g.nodes.items()},
            "frame_range": list(out_range) if out_range else None,
            "preroll": self.ctx.preroll,
            "batch_size": self.ctx.batch_size,
        }
        outputs: list[Path] = []
        try:
            for nid in g.order:
                node = self.nodes[nid]
                node.commit(self.ctx)
                if isinstance(node, Sink):
                    outputs.extend(node.output_paths())
        except BaseException:
            for node in self.nodes.values():
                node.abort()
            raise
        return RunResult(frames, seconds, dict(self.node_seconds), outputs, stats)


def evaluate_at(graph: Graph, node_id: str, frame: int, *, device: str | None = None) -> dict[str, Any]:
    """Outputs of ``node_id`` for one frame: only its ancestors run, only the frames needed.

    Stateful ancestors get the earlier frames they declare (pre-roll) first, in the
    graph's batches, so the frame is computed as in a whole run. A sink's
    inputs stand in for its outputs, so previewing an Encode shows what it would write.
    Values are returned as computed for the batch that ends at ``frame``; the caller picks
    the frame out (``Frames.index``).
    """
    keep = graph.ancestors(node_id)
    requested = device or graph.settings.device
    # the run's own batches and pre-roll, so the frame comes out as a whole render makes it
    ctx = RunContext(frame_range=(frame, frame), batch_size=graph.settings.batch_size, preroll=graph.preroll(keep),
                     graph_hash=graph.hash, graph_name=graph.name, graph_path=graph.path)
    nodes = {nid: graph.nodes[nid].cls(nid, graph.nodes[nid].params,
                                       resolve_device(requested, graph.nodes[nid].device,
                                                      graph.nodes[nid].cls.schema.devices))
             for nid in keep}
    for nid in keep:
        if nid != node_id or not isinstance(nodes[nid], Sink):
            nodes[nid].open(ctx)
    last: dict[str, dict[str, Any]] = {}
    sources = [nid for nid in keep if isinstance(nodes[nid], Source)]
    iterators = {nid: iter(nodes[nid].batches(ctx)) for nid in sources}
    while True:
        batch: dict[str, dict[str, Any]] = {}
        for nid in keep:
            node = nodes[nid]
            if isinstance(node, Source):
                out = next(iterators[nid], None)
                if out is None:
                    return last.get(node_id, {})
                batch[nid] = out
                continue
            inputs = {port: move(batch[src][sport], node.device)
                      for port, (src, sport) in graph.nodes[nid].inputs.items()}
            batch[nid] = inputs if (nid == node_id and isinstance(node, Sink)) else node.process(**inputs)
        last = batch
        if any(isinstance(v, Frames) and frame in v.index for v in batch[node_id].values()):
            return batch[node_id]
