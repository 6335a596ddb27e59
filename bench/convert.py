"""Benchmark the swap graph against a plain transcode, its slowest stage and a naive loop.

``graphs/swap.json`` (the whole conversion, Decode to Encode), run through swapgraph's
API with an untrained ``lite-64`` model made on the fly (or ``--model``), on the first
``--frames`` frames of a clip, against, all measured in one run:

1. a plain PyAV transcode of the same frames (decode -> rgb24 -> libx264, same preset
   and crf, audio remuxed): what the swap costs on top of reading and writing the video;
2. its slowest stage: the busiest node's seconds from the executor's own timing, and
   every node timed alone (the graph's nodes run in turn, one batch at a time, in one
   thread, so no stage competes with another): how close the streaming executor gets
   to the speed of its slowest stage;
3. a naive loop: the same nodes, one frame at a time through every step in turn, in one
   thread, faces found in this process (DetectFaces workers=1).

The graph runs with DetectFaces' default workers (one process per core) and, for a
like-for-like figure against the naive loop, with workers=1. Runs alternate and the
best of each counts, because the machine is shared and noisy.

    python bench/convert.py [--clip PATH] [--frames 150] [--model DIR] [--repeat 1] [--logs]
"""

from __future__ import annotations

import os

# before anything imports mediapipe (spawned workers inherit it): quiets what still uses glog
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse
import contextlib
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from swapgraph.nodes.swap_model import ModelInfo, SwapModel, bank_models, read_info, save_model
from swapgraph.runtime.devices import resolve_device
from swapgraph.runtime.executor import Executor, torch_threads_shared_by
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.model import Graph
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import RunContext, Source
from swapgraph.runtime.ports import move
from swapgraph.runtime.registry import default_registry

from _common import REPO, SHARED_CLIP, cpu_seconds, default_clip, describe, plain_transcode, upscaled_clip
from faces import native_stderr_silenced

GRAPH = REPO / "graphs" / "swap.json"
PRESET = "veryfast"


@dataclass
class Timing:
    frames: int
    seconds: float  # wall time, opening the nodes (models, pools, files) included
    cpu: float  # CPU seconds of this process and of the worker processes it reaped
    node_seconds: dict[str, float] = field(default_factory=dict)  # empty for the plain transcode

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def cpu_with_children() -> float:
    # DetectFaces' pool workers are reaped when the node finishes, so their time lands here
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return cpu_seconds() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], tuple[int, dict[str, float]]]) -> Timing:
    c0, t0 = cpu_with_children(), time.perf_counter()
    frames, node_seconds = fn()
    return Timing(frames, time.perf_counter() - t0, cpu_with_children() - c0, node_seconds)


def make_model(folder: Path) -> Path:
    """An untrained lite-64 model: the weights' values do not change the work per frame."""
    torch.manual_seed(0)
    save_model(folder, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    return folder


def load_swap_graph(clip: Path, model: Path, out: Path, workers: int | None) -> Graph:
    """Validate the swap graph the way ``swapgraph run --set ...`` does; Align follows the model's geometry."""
    info = read_info(next(iter(bank_models(model).values())))
    overrides = [f"plate.path={clip}", f"swap.model={model}", f"out.path={out}", f"out.preset={PRESET}",
                 f"crops.crop={info.crop}", f"crops.coverage={info.coverage}", f"crops.size={info.size}"]
    if workers is not None:
        overrides.append(f"faces.workers={workers}")
    return validate_graph(load_graph_document(GRAPH), default_registry(), path=GRAPH, overrides=overrides)


def run_graph(graph: Graph, frames: int) -> tuple[int, dict[str, float]]:
    result = Executor(graph, frame_range=(0, frames - 1)).run()
    return result.frames, result.node_seconds


def run_in_turn(graph: Graph, frames: int, batch_size: int) -> tuple[int, dict[str, float]]:
    """The graph's nodes in topological order on one batch before the next is read, in this
    thread: each node's time is its time alone. With batch_size 1 this is the naive loop."""
    ctx = RunContext(frame_range=(0, frames - 1), batch_size=batch_size, graph_hash=graph.hash,
                     graph_name=graph.name, graph_path=graph.path)
    nodes = {nid: b.cls(nid, b.params, resolve_device(graph.settings.device, b.device, b.cls.schema.devices))
             for nid, b in graph.nodes.items()}
    seconds = dict.fromkeys(graph.order, 0.0)
    (source,) = [nid for nid in graph.order if isinstance(nodes[nid], Source)]  # the plate
    done = 0
    # torch gets the threads the executor gives each stage of this graph: on a busy two-core
    # machine torch's spinning OpenMP threads make small kernels several times slower
    with torch_threads_shared_by(len(graph.order)):
        try:
            for nid in graph.order:
                nodes[nid].open(ctx)
            batches = iter(nodes[source].batches(ctx))
            while True:
                t0 = time.perf_counter()
                values: dict[str, Any] = {source: next(batches, None)}
                seconds[source] += time.perf_counter() - t0
                if values[source] is None:
                    break
                for nid in graph.order:
                    if nid == source:
                        continue
                    node = nodes[nid]
                    inputs = {port: move(values[src][sport], node.device)
                              for port, (src, sport) in graph.nodes[nid].inputs.items()}
                    t0 = time.perf_counter()
                    values[nid] = node.process(**inputs)
                    seconds[nid] += time.perf_counter() - t0
                done += len(values[source]["frames"])
            for nid in graph.order:
                t0 = time.perf_counter()
                nodes[nid].finish()
                seconds[nid] += time.perf_counter() - t0
            for nid in graph.order:
                nodes[nid].commit(ctx)
        except BaseException:
            for node in nodes.values():
                node.abort()
            raise
    return done, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, help=f"input clip (default {SHARED_CLIP})")
    ap.add_argument("--frames", type=int, default=150, help="frames converted from the start of the clip")
    ap.add_argument("--model", type=Path, help="a trained model folder or bank (default: an untrained lite-64)")
    ap.add_argument("--repeat", type=int, default=1, help="alternating rounds of every variant")
    ap.add_argument("--height", type=int, help="resize the clip to this height first (720, 1080: the GPU targets)")
    ap.add_argument("--logs", action="store_true", help="let MediaPipe's native logging through to stderr")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.frames < 1:
        ap.error("--frames must be at least 1")

    with tempfile.TemporaryDirectory(prefix="swapgraph-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = args.clip.resolve() if args.clip else default_clip(tmp)
        if args.height:
            clip = upscaled_clip(clip, args.height, tmp / f"{clip.stem}_{args.height}p.mp4", args.frames)
        model = args.model.resolve() if args.model else make_model(tmp / "lite-64")
        with contextlib.nullcontext() if args.logs else native_stderr_silenced():
            report(clip, model, tmp, args.frames, args.repeat)


def report(clip: Path, model: Path, tmp: Path, frames: int, repeat: int) -> None:
    cores = os.cpu_count() or 1
    graph = load_swap_graph(clip, model, tmp / "graph.mp4", None)
    one = load_swap_graph(clip, model, tmp / "graph1.mp4", 1)
    turn = load_swap_graph(clip, model, tmp / "turn.mp4", None)
    naive = load_swap_graph(clip, model, tmp / "naive.mp4", 1)
    crf, batch = graph.nodes["out"].params.crf, graph.settings.batch_size
    print(describe(clip))
    print(f"{frames} frames, model {model.name}, libx264 crf {crf} preset {PRESET}, {cores} CPU cores")
    print(f"graph: batch {batch}, DetectFaces workers={graph.nodes['faces'].params.workers or cores} "
          "(default: one per core), and workers=1")
    print(f"in turn: the graph's nodes one batch of {batch} at a time in one thread (each node alone), "
          "default workers")
    print("naive loop: one frame at a time through every node in turn in one thread, DetectFaces workers=1")
    print("torch runs 1 intra-op thread in every variant (the executor sets that for its stages)\n")

    variants: dict[str, Callable[[], tuple[int, dict[str, float]]]] = {
        "plain transcode": lambda: (plain_transcode(clip, tmp / "plain.mp4", PRESET, crf, frames), {}),
        "graph": lambda: run_graph(graph, frames),
        "graph, 1 worker": lambda: run_graph(one, frames),
        f"in turn, batch {batch}": lambda: run_in_turn(turn, frames, batch),
        "naive loop": lambda: run_in_turn(naive, frames, 1),
    }
    best: dict[str, Timing] = {}
    print(f"{'run':<22}{'frames':>8}{'seconds':>9}{'frames/s':>10}{'cpu s':>8}{'cores':>7}")
    for i in range(repeat):
        for name, fn in variants.items():
            t = timed(fn)
            if name not in best or t.fps > best[name].fps:
                best[name] = t
            print(f"{name + f' #{i + 1}':<22}{t.frames:>8}{t.seconds:>9.2f}{t.fps:>10.1f}{t.cpu:>8.2f}"
                  f"{t.cpu / t.seconds:>7.2f}")
    print("(seconds: wall time, opening the nodes included; cpu s: this process and the DetectFaces workers; "
          "cores: cpu s / seconds)\n")

    staged = [name for name in variants if best[name].node_seconds]
    print("node seconds (best run of each; streaming runs overlap, so their nodes' times add up to more than "
          "the wall time)")
    print(f"{'node':<10}{'type':<17}" + "".join(f"{name:>18}" for name in staged))
    for nid in graph.order:
        print(f"{nid:<10}{graph.nodes[nid].cls.type_name():<17}"
              + "".join(f"{best[name].node_seconds[nid]:>18.2f}" for name in staged))
    print(f"{'wall':<27}" + "".join(f"{best[name].seconds:>18.2f}" for name in staged) + "\n")

    g, g1, alone = best["graph"], best["graph, 1 worker"], best[f"in turn, batch {batch}"]
    busiest = max(g.node_seconds, key=g.node_seconds.get)
    slowest = max(alone.node_seconds, key=alone.node_seconds.get)
    print("best frames/s: " + ", ".join(f"{name} {t.fps:.1f}" for name, t in best.items()))
    print(f"busiest node in the graph run: {busiest!r} ({g.node_seconds[busiest]:.2f} s of {g.seconds:.2f} s); "
          f"slowest alone: {slowest!r} ({alone.node_seconds[slowest]:.2f} s)")
    print(f"swap / plain transcode: {g.fps / best['plain transcode'].fps:.2f}  "
          "[target on a GPU >= 1.0, never below 0.7; on CPUs reported only]")
    print(f"scheduler efficiency (busiest node's seconds / graph wall): {g.node_seconds[busiest] / g.seconds:.2f}"
          "  [target >= 0.85]")
    print(f"graph / slowest stage alone (its seconds alone / graph wall): "
          f"{alone.node_seconds[slowest] / g.seconds:.2f}  [target >= 0.85]")
    # on few cores the stages' total work, shared out, can bound the graph more than its slowest stage
    ideal = max(alone.node_seconds[slowest], sum(alone.node_seconds.values()) / cores)
    print(f"graph / ideal on {cores} cores (max(slowest stage alone, all stages alone / {cores}) / graph wall): "
          f"{ideal / g.seconds:.2f}  [1.0 = ideal]")
    print(f"streaming overlap (graph / its nodes in turn, batch {batch}): {g.fps / alone.fps:.2f}  "
          f"[at most ~{cores}]")
    print(f"graph ({cores} workers) / naive loop (1 worker): {g.fps / best['naive loop'].fps:.2f}  "
          f"[target >= 1.5 on two cores]")
    print(f"graph (1 worker) / naive loop (1 worker): {g1.fps / best['naive loop'].fps:.2f}  [like for like]")


if __name__ == "__main__":
    main()
