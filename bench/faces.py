"""Benchmark DetectFaces + Align against a bare MediaPipe loop, as ratios from one run.

The clip is decoded once into memory, so decode cost is on neither side. The bare loop
is what a user writes by hand: BlazeFace full-range detection and the refined face mesh,
created once in this process, run on every full frame. The swapgraph side is a graph
run by the executor, batches of 16 frames from memory through DetectFaces (one worker,
in this process; then one worker per CPU core) and Align, each node its own stage, as in
any run. Each variant's first batch is untimed (pool start-up and model loading,
reported separately); the remaining frames are timed. Runs alternate and the best of each
counts, because the machine is shared and noisy.

    python bench/faces.py [--clip PATH] [--frames 300] [--repeat 2] [--logs]
"""

from __future__ import annotations

import os

# before anything imports mediapipe (spawned workers inherit it): quiets what still uses glog
os.environ.setdefault("GLOG_minloglevel", "2")

import argparse
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
import torch

from swapgraph.nodes.builtin import NODES as BUILTIN_NODES
from swapgraph.runtime.executor import Executor
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import NodeSchema, Port, RunContext, Sink, Source
from swapgraph.nodes.ports import FaceCrops
from swapgraph.runtime.ports import Frames, VideoInfo
from swapgraph.runtime.registry import Registry

from _common import SHARED_CLIP, cpu_seconds, default_clip

BATCH = 16  # the batch size of graphs/extract.json


@dataclass
class Timing:
    startup: float  # seconds to build the models (and pool) and process the warm-up batch
    seconds: float  # wall time of the timed frames
    cpu: float  # CPU seconds of this process (all its threads; pool workers not included)
    frames: int
    with_face: int
    detected: int | None = None  # bare loop only: frames where its detector alone found a face

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send fd 2 to /dev/null, keeping Python's ``sys.stderr`` on the real one.

    MediaPipe 0.10.21 logs through absl (and TFLite prints), which no environment variable
    silences; spawned pool workers inherit the redirected fd 2. Worker exceptions still
    reach this process through the pool.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    old = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = old
        os.dup2(saved, 2)
        os.close(saved)


def decode(clip: Path, limit: int) -> np.ndarray:
    """The first ``limit`` frames of ``clip`` as RGB uint8 (N, H, W, 3)."""
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(limit), c.decode(stream))]
    return np.stack(frames)


class BareLoop:
    """The hand-written loop: detection, then the mesh, on every full frame."""

    def __init__(self) -> None:
        import mediapipe as mp

        t0 = time.perf_counter()
        self.detect = mp.solutions.face_detection.FaceDetection(model_selection=1)
        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1)
        self.created = time.perf_counter() - t0

    def _frame(self, image: np.ndarray) -> tuple[bool, bool]:
        """(detector found a face, mesh found a face)"""
        detected = bool(self.detect.process(image).detections)
        return detected, bool(self.mesh.process(image).multi_face_landmarks)

    def run(self, video: np.ndarray) -> Timing:
        t0 = time.perf_counter()
        for image in video[:BATCH]:
            self._frame(image)
        # the models are built once per process, so only the first run pays for them
        startup = time.perf_counter() - t0 + self.created
        self.created = 0.0
        c0, t0 = cpu_seconds(), time.perf_counter()
        found = [self._frame(image) for image in video[BATCH:]]
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        return Timing(startup, seconds, cpu, len(found), sum(m for _, m in found), sum(d for d, _ in found))


def batch(video: np.ndarray, start: int) -> Frames:
    """Frames ``start`` .. ``start + BATCH`` as Decode would emit them (uint8, 30 fps timing)."""
    pixels = torch.from_numpy(video[start:start + BATCH]).permute(0, 3, 1, 2)
    index = list(range(start, start + pixels.shape[0]))
    info = VideoInfo(width=video.shape[2], height=video.shape[1], fps=Fraction(30), time_base=Fraction(1, 30))
    return Frames(pixels, index, index, [1] * len(index), info)


class MemoryFrames(Source):
    """A source of the frames already decoded into memory, so decode is on neither side."""

    schema = NodeSchema(outputs={"frames": Port(Frames)}, devices=("cpu",))
    video: np.ndarray

    def frame_count(self, ctx: RunContext) -> int:
        return len(self.video)

    def batches(self, ctx: RunContext):
        for start in range(0, len(self.video), BATCH):
            yield {"frames": batch(self.video, start)}


class FaceCounter(Sink):
    """Counts frames with a face; the leaf whose progress the timing follows."""

    schema = NodeSchema(inputs={"crops": Port(FaceCrops)}, devices=("cpu",))
    frames_with_face = 0

    def process(self, crops: FaceCrops) -> dict:
        FaceCounter.frames_with_face += len(set(crops.row))
        return {}


def run_nodes(video: np.ndarray, workers: int) -> Timing:
    """DetectFaces (``workers`` processes) then Align, run by the executor as any graph is:
    each node its own stage, so Align works on one batch while DetectFaces finds the next."""
    MemoryFrames.video = video
    FaceCounter.frames_with_face = 0
    doc = {"version": 1, "settings": {"batch_size": BATCH}, "nodes": {
        "plate": {"type": "MemoryFrames"},
        "faces": {"type": "DetectFaces", "inputs": {"frames": "plate.frames"}, "params": {"workers": workers}},
        "crops": {"type": "Align", "inputs": {"frames": "plate.frames", "faces": "faces.faces"}},
        "count": {"type": "FaceCounter", "inputs": {"crops": "crops.crops"}}}}
    graph = validate_graph(doc, Registry([*BUILTIN_NODES, MemoryFrames, FaceCounter]))
    marks: dict[int, tuple[float, float]] = {}

    def progress(done: int, total: int | None) -> None:
        marks.setdefault(done, (time.perf_counter(), cpu_seconds()))

    t0 = time.perf_counter()
    Executor(graph, on_progress=progress).run()
    # timed from the moment the first batch was through (pool start-up and model loading
    # are reported apart) to the moment the last one was
    first = min(d for d in marks if d >= BATCH)
    (t_first, c_first), (t_last, c_last) = marks[first], marks[len(video)]
    return Timing(t_first - t0, t_last - t_first, c_last - c_first, len(video) - first,
                  FaceCounter.frames_with_face * (len(video) - first) // len(video))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, help=f"input clip (default {SHARED_CLIP})")
    ap.add_argument("--frames", type=int, default=300, help="frames decoded from the clip and measured")
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds of every variant")
    ap.add_argument("--height", type=int, help="resize the frames to this height first (720, 1080: the GPU targets)")
    ap.add_argument("--workers", help="worker counts to measure, e.g. 1,4,16 (default: 1 and every core)")
    ap.add_argument("--logs", action="store_true", help="let MediaPipe's native logging through to stderr")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.frames < 2 * BATCH:
        ap.error(f"--frames must be at least {2 * BATCH} (one warm-up batch, then timed ones)")

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="swapgraph-bench-") as tmp_name:
        clip = args.clip.resolve() if args.clip else default_clip(Path(tmp_name))
        t0 = time.perf_counter()
        video = decode(clip, args.frames)
    if args.height:
        import cv2

        width = round(video.shape[2] * args.height / video.shape[1] / 2) * 2
        video = np.stack([cv2.resize(f, (width, args.height), interpolation=cv2.INTER_CUBIC) for f in video])
    n, h, w, _ = video.shape
    if n < 2 * BATCH:
        sys.exit(f"{clip} has {n} frames; need at least {2 * BATCH}")
    print(f"{clip.name}: {w}x{h}, {n} frames decoded in {time.perf_counter() - t0:.1f} s "
          f"({BATCH} warm-up, {n - BATCH} timed), {cores} CPU cores\n")

    with contextlib.nullcontext() if args.logs else native_stderr_silenced():
        counts = sorted({int(x) for x in args.workers.split(",")}) if args.workers else sorted({1, cores})
        report(video, args.repeat, cores, counts)


def report(video: np.ndarray, repeat: int, cores: int, counts: list[int] | None = None) -> None:
    counts = counts or sorted({1, cores})
    bare = BareLoop()
    variants: dict[str, Callable[[np.ndarray], Timing]] = {"bare MediaPipe": bare.run}
    for k in sorted({1, *counts}):
        variants[f"nodes, {k} worker{'s' if k > 1 else ''}"] = lambda v, k=k: run_nodes(v, k)
    all_cores = f"nodes, {max(counts)} workers"
    cores = max(counts)
    best: dict[str, Timing] = {}
    print(f"{'run':<22}{'start-up s':>11}{'frames':>8}{'seconds':>9}{'frames/s':>10}{'cpu s':>7}{'face':>7}")
    for i in range(repeat):
        for name, fn in variants.items():
            t = fn(video)
            if name not in best or t.fps > best[name].fps:
                best[name] = t
            print(f"{name + f' #{i + 1}':<22}{t.startup:>11.2f}{t.frames:>8}{t.seconds:>9.2f}{t.fps:>10.1f}"
                  f"{t.cpu:>7.2f}{t.with_face / t.frames:>7.1%}")
    print("(start-up: model loading, pool spawn and the warm-up batch; cpu s: this process only)\n")

    b, one = best["bare MediaPipe"], best["nodes, 1 worker"]
    print(f"best frames/s: bare MediaPipe {b.fps:.1f}, DetectFaces+Align 1 worker {one.fps:.1f}"
          + (f", {cores} workers {best[all_cores].fps:.1f}" if cores > 1 else ""))
    print(f"frames with a face: bare MediaPipe {b.with_face / b.frames:.1%} (its detector alone "
          f"{(b.detected or 0) / b.frames:.1%}), DetectFaces+Align {one.with_face / one.frames:.1%}")
    print(f"throughput ratio (1 worker / bare MediaPipe): {one.fps / b.fps:.2f}  [target >= 0.9]")
    if cores > 1:
        many = best[all_cores]
        print(f"start-up with {cores} workers: {many.startup:.1f} s (1 worker {one.startup:.1f} s)")
        print(f"speed-up ({cores} workers / 1 worker): {many.fps / one.fps:.2f}  [at most ~{cores}]")
    for k in counts:
        if k > 1:
            t = best[f"nodes, {k} workers"]
            print(f"scaling: {k} workers {t.fps:.1f} frames/s, {t.fps / one.fps:.2f}x of 1 worker")


if __name__ == "__main__":
    main()
