"""The streaming executor: every node a stage, stages joined by bounded queues.

Sources emit batches of consecutive frames; each node runs in its own thread, takes one
batch from each upstream queue, processes it and hands the result to every downstream
queue. Queues hold at most ``queue_depth`` batches, so memory is bounded by batch size
and queue depth, never by the length of the shot. Decode, CPU nodes, GPU nodes and
Encode therefore overlap, and a graph runs at about the speed of its slowest stage
(PyAV, OpenCV and torch release the GIL in their heavy calls).

The executor knows nothing of what a node computes: it moves values between threads,
moves tensors where a link crosses devices, times nodes, and decides between ``commit``
(every stage finished) and ``abort`` (a failure, Ctrl-C, SIGTERM or a :class:`CancelToken`).
Every node that was opened is closed: ``commit`` on success, else ``abort`` exactly once.
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
from typing import Any, Callable, Iterable, Iterator

import torch

from . import interrupts
from .devices import resolve_device
from .errors import Cancelled, NodeError, SwapgraphError
from .files import OutputLocks
from .graph.model import Graph
from .node import Node, RunContext, Sink, Source
from .ports import PortType, move

_END = object()
_SKIP = object()  # a batch wholly outside what a node needs: passed on so stages stay in step


class _Stopped(Exception):
    """Raised inside a stage when another stage failed or the run was cancelled."""


class CancelToken:
    """Asks a run to stop: ``cancel()`` from any thread (or from the progress callback).

    The run stops promptly, aborts every node it opened and raises :class:`Cancelled`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def abort_nodes(nodes: Iterable[Node]) -> None:
    """``abort`` each node, the last opened first; a failing abort does not spare the others."""
    for node in reversed(list(nodes)):
        try:
            node.abort()
        except Exception as exc:  # keep cleaning the others
            print(f"warning: cleaning up node {node.id!r}: {exc}", file=sys.stderr)


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


def frame_numbers(values: dict[str, Any]) -> list[int] | None:
    """The frame numbers of the first port value in ``values`` that has any."""
    for v in values.values():
        numbers = v.frame_numbers() if isinstance(v, PortType) else None
        if numbers:
            return numbers
    return None


class Executor:
    """Runs a validated :class:`Graph` once, streaming.

    ``on_progress(done, total)`` is called from the calling thread while the run goes;
    ``cancel`` stops the run when set (see :class:`CancelToken`).
    """

    def __init__(self, graph: Graph, *, device: str | None = None, batch_size: int | None = None,
                 frame_range: tuple[int, int | None] | None = None, cpus: int | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None,
                 cancel: CancelToken | None = None) -> None:
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
        self.cancel = cancel if cancel is not None else CancelToken()
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
        """Open every node, stream the shot through them, finish them, then commit each.

        On any failure (in ``open``, ``process``, ``finish`` or ``commit``), Ctrl-C or a
        cancel, every node that was opened gets ``abort`` exactly once and nodes never
        opened get nothing; a node whose own ``open`` raised cleans up after itself.
        """
        opened: list[Node] = []
        outputs = [p for n in self.nodes.values() if isinstance(n, Sink) for p in n.output_paths()]
        try:
            with OutputLocks(outputs):
                return self._run(opened)
        except KeyboardInterrupt:
            abort_nodes(opened)
            raise Cancelled("run cancelled; no output was written") from None
        except BaseException:
            abort_nodes(opened)
            raise

    def _run(self, opened: list[Node]) -> RunResult:
        g = self.graph
        stop = threading.Event()
        channels = {(u, v): _Channel(g.settings.queue_depth, stop) for u, v in g.dag.edges}
        errors: list[tuple[str, BaseException]] = []
        started = time.perf_counter()

        for nid in g.order:
            if self.cancel.cancelled:
                raise Cancelled("run cancelled; no output was written")
            self.nodes[nid].open(self.ctx)
            opened.append(self.nodes[nid])
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
                        numbers = frame_numbers(inputs)
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
        with torch_threads_shared_by(sum(1 for n in self.nodes.values() if n.device.type == "cpu"), self.ctx.cpus):
            try:
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    for t in threads:
                        t.join(timeout=0.1)
                        if self.on_progress:
                            self.on_progress(min(self.node_frames[n] for n in leaves), total)
                        if self.cancel.cancelled:
                            stop.set()
            except BaseException:  # Ctrl-C, or a failing progress callback: no node is aborted mid-batch
                stop.set()
                for t in threads:
                    if t.ident is not None:  # Ctrl-C can land while the threads are being started
                        t.join()
                raise
        if self.on_progress:
            self.on_progress(min(self.node_frames[n] for n in leaves), total)

        if self.cancel.cancelled:
            raise Cancelled("run cancelled; no output was written")
        if errors:
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
        # the commit phase: every sink stages its outputs, then all are renamed together; a
        # signal now waits for the renames, so the outputs appear all or none
        with interrupts.held() as held:
            for nid in g.order:
                node = self.nodes[nid]
                node.commit(self.ctx)
                if isinstance(node, Sink):
                    outputs.extend(node.output_paths())
            self.ctx.publication.commit()
        if held.signal is not None:
            raise Cancelled("cancelled as the run finished; its outputs were written whole: "
                            + ", ".join(map(str, outputs)))
        return RunResult(frames, seconds, dict(self.node_seconds), outputs, stats)
