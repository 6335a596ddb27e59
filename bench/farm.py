"""Benchmark the render farm: one run against ``render`` with 1 and 2 local Dask workers.

``graphs/swap.json`` with an untrained ``lite-64`` model made on the fly (or ``--model``),
on the first ``--frames`` frames of a shared clip, in one process, all measured in one
run:

1. one run (``swapgraph run``'s executor), the whole range at once;
2. ``render`` with one local worker: the same frames in chunks of ``--chunk-size``, each
   chunk decoding its pre-roll (the frames the stateful face nodes need before it), plus
   the cluster's start and the join. Its time over the single run's is the cost of
   chunking;
3. ``render`` with two local workers: the gain from a second worker.

Each render starts from an empty chunks folder. The outputs are checked to be the same
frames as the single run (FFV1, lossless), so the figures compare like with like.

    python bench/farm.py [--clip PATH] [--frames 192] [--chunk-size 96] [--model DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model
from swapgraph.runtime.executor import Executor
from swapgraph import api
from swapgraph.farm.manifests import read_manifest
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.registry import default_registry

from _common import REPO, default_clip, describe

GRAPH = REPO / "graphs" / "swap.json"


def frames_of(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--frames", type=int, default=192)
    ap.add_argument("--chunk-size", type=int, default=96)
    ap.add_argument("--model", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = args.clip or default_clip(tmp)
        model = args.model
        if model is None:
            torch.manual_seed(0)
            model = tmp / "model"
            save_model(model, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
        sets = [f"plate.path={clip}", f"swap.model={model}", "out.codec=ffv1"]
        last = args.frames - 1
        print(describe(clip))

        doc = load_graph_document(GRAPH)
        single_out = tmp / "single.mkv"
        graph = validate_graph(doc, default_registry(), path=GRAPH, overrides=[*sets, f"out.path={single_out}"])
        print(f"graph {GRAPH.name}: pre-roll {graph.preroll()} frames, batch {graph.settings.batch_size}; "
              f"frames 0-{last}, chunks of {args.chunk_size}; {os.cpu_count()} cores")
        t0 = time.perf_counter()
        Executor(graph, frame_range=(0, last)).run()
        single = time.perf_counter() - t0
        print(f"one run:              {single:7.1f} s  ({args.frames / single:.2f} frames/s)")
        reference = frames_of(single_out)

        timings = {}
        for workers in (1, 2):
            out = tmp / f"render{workers}.mkv"
            plan = api.plan_render(api.load(GRAPH, sets), out, chunk_size=args.chunk_size, frames=(0, last))
            shutil.rmtree(plan.chunks_dir, ignore_errors=True)
            t0 = time.perf_counter()
            result = api.render(plan, workers=workers)
            timings[workers] = time.perf_counter() - t0
            same = np.array_equal(frames_of(out), reference)
            docs = [read_manifest(m) for m in sorted(plan.chunks_dir.glob("*.manifest.json"))]
            runs = sum(d["seconds"] for d in docs)
            print(f"render, {workers} worker{'s' if workers > 1 else ' '}:    {timings[workers]:7.1f} s  "
                  f"({args.frames / timings[workers]:.2f} frames/s; {result['chunks']} chunks; "
                  f"{'same frames as the one run' if same else 'FRAMES DIFFER from the one run'})")
            rest = f"; the rest (cluster start, worker imports, join) {timings[1] - runs:.1f} s" if workers == 1 else ""
            each = " + ".join(f"{d['seconds']:.1f}" for d in docs)
            print(f"    the chunks' own runs: {each} s{rest}")
        print(f"\ncost of chunking (render with 1 worker / one run):   {timings[1] / single:.2f}x the time")
        print(f"gain from a second worker (1 worker / 2 workers):     {timings[1] / timings[2]:.2f}x")
        print(f"render with 2 workers against one run:                {single / timings[2]:.2f}x the speed")


if __name__ == "__main__":
    main()
