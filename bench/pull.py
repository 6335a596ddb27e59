"""Benchmark the editorial round trip: ``swapgraph pull`` against a plain per-shot loop.

A cut of ``--shots`` clips taken from one clip (spread over it, 24 frames each, marked
SWAP), pulled with ``graphs/transcode.json`` (libx264 veryfast) and ``--handles``; all
measured in one run, in one process:

1. pull: read the cut, select, probe, plan, render every shot through ``render`` on one
   local Dask worker (the cluster started once for all renders), join, write the pull
   list; and ``--workers 0`` (the chunks in this process, no Dask); against a naive loop in plain PyAV that seeks to each shot's first frame and
   transcodes its frames with handles to libx264, with no audio. The ratio is what the
   round trip costs over the frames themselves;
2. the same renders with a Dask cluster started per render (what calling ``render`` once
   per shot costs): the gain of sharing one cluster;
3. a second pull with the same arguments (nothing to render) against the first;
4. conform to .otio and to .xml.

Runs alternate between pull and the naive loop and the best of ``--repeat`` counts, as
the machine is shared and noisy.

    python bench/pull.py [--clip PATH] [--shots 6] [--handles 8] [--repeat 2]
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
import opentimelineio as otio

from swapgraph import api
from swapgraph.timeline.conform import conform
from swapgraph.timeline.pull import plan_pull, pull

from _common import REPO, default_clip, describe

GRAPH = REPO / "graphs" / "transcode.json"
SETTINGS = ["out.codec=libx264", "out.preset=veryfast", "out.crf=18", "out.path=render.mp4"]


def make_cut(clip: Path, folder: Path, shots: int, length: int = 24) -> tuple[Path, list[tuple[int, int]]]:
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        frames, rate = v.frames, float(v.average_rate)
    rt = lambda f: otio.opentime.RationalTime(f, rate)  # noqa: E731
    cut = otio.schema.Timeline(name="bench", global_start_time=rt(round(3600 * rate)))
    track = otio.schema.Track(name="V1")
    spans = []
    for i in range(shots):
        start = 10 + i * (frames - length - 20) // max(1, shots - 1)
        clip_ = otio.schema.Clip(name=f"sh{i + 1:03d}0", media_reference=otio.schema.ExternalReference(
            target_url=str(clip)), source_range=otio.opentime.TimeRange(rt(start), rt(length)))
        clip_.markers.append(otio.schema.Marker(name="SWAP", marked_range=otio.opentime.TimeRange(rt(start), rt(1))))
        track.append(clip_)
        spans.append((start, start + length - 1))
    cut.tracks.append(track)
    path = folder / "bench.otio"
    otio.adapters.write_to_file(cut, str(path))
    return path, spans


def naive(clip: Path, folder: Path, spans: list[tuple[int, int]]) -> int:
    """Each range seeked to and transcoded on its own, in plain PyAV (the hand-written way)."""
    done = 0
    for n, (first, last) in enumerate(spans):
        with av.open(str(clip)) as inp, av.open(str(folder / f"naive{n}.mp4"), "w") as dst:
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            vout = dst.add_stream("libx264", rate=vin.average_rate)
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.codec_context.options = {"crf": "18", "preset": "veryfast"}
            step = round(1 / (vin.average_rate * vin.time_base))
            start_pts = (vin.start_time or 0) + first * step
            inp.seek(start_pts, stream=vin, backward=True)
            for frame in inp.decode(vin):
                index = round((frame.pts - (vin.start_time or 0)) / step)
                if index < first:
                    continue
                if index > last:
                    break
                new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                dst.mux(vout.encode(new))
                done += 1
            dst.mux(vout.encode(None))
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path)
    ap.add_argument("--shots", type=int, default=6)
    ap.add_argument("--handles", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        clip = args.clip or default_clip(tmp)
        print(describe(clip))
        cut, spans = make_cut(clip, tmp, args.shots)
        handled = [(max(0, a - args.handles), b + args.handles) for a, b in spans]
        kwargs = dict(select=["marker:SWAP"], graph=GRAPH, handles=args.handles, overrides=SETTINGS)
        best_pull = best_naive = best_inline = float("inf")
        frames = 0
        for _ in range(args.repeat):
            out = tmp / "pull"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            result = pull(cut, out=out, **kwargs)
            best_pull = min(best_pull, time.perf_counter() - t)
            frames = sum(r.frames for r in result.renders)
            t = time.perf_counter()
            n = naive(clip, tmp, handled)
            best_naive = min(best_naive, time.perf_counter() - t)
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            pull(cut, out=out, workers=0, **kwargs)
            best_inline = min(best_inline, time.perf_counter() - t)
        assert n == frames, (n, frames)
        print(f"cut: {args.shots} shots of 24 frames, handles {args.handles}: {frames} frames in "
              f"{len(result.renders)} renders")
        print(f"pull {best_pull:.2f} s, naive per-shot PyAV loop {best_naive:.2f} s: ratio {best_pull / best_naive:.2f}x "
              f"(pull / naive)")
        print(f"pull --workers 0 (in this process, no Dask) {best_inline:.2f} s: ratio {best_inline / best_naive:.2f}x "
              "(pull / naive)")

        # the same renders, one Dask cluster per render
        shared = best_pull
        again = tmp / "again"
        plans = plan_pull(cut, out=again, **kwargs).plans
        t = time.perf_counter()
        for plan in plans:
            api.render(plan)
        per_render = time.perf_counter() - t
        print(f"renders with a cluster per render {per_render:.2f} s against the pull's shared cluster (pull, whole) "
              f"{shared:.2f} s: sharing saves {per_render / shared:.2f}x")

        t = time.perf_counter()
        second = pull(cut, out=tmp / "pull", **kwargs)
        repull = time.perf_counter() - t
        assert not second.rendered
        print(f"second pull, nothing to render: {repull:.2f} s = {repull / best_pull:.3f} of the first")

        for suffix in (".otio", ".xml"):
            t = time.perf_counter()
            conform(cut, pull_dir=tmp / "pull", out=tmp / f"conformed{suffix}")
            print(f"conform to {suffix}: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
