"""Benchmark the transcode graph against a plain PyAV loop, as ratios from one run.

1. Throughput: ``graphs/transcode.json`` (Decode -> Encode) run through swapgraph's API,
   against a plain PyAV decode -> rgb24 ndarray -> encode loop that also remuxes the
   audio, on the same clip with the same libx264 settings. Runs alternate and the best
   time of each counts, because the machine is shared and noisy.
2. Peak memory: the graph on the clip and on the clip repeated ten times, each run in a
   fresh subprocess that reports its own peak RSS (VmHWM); runs alternate and the lowest
   peak of each counts. A streaming executor should need about the same for both.

    python bench/transcode.py [--clip PATH] [--preset veryfast] [--crf 18] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from swapgraph.runtime.executor import Executor
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.registry import default_registry

from _common import REPO, SHARED_CLIP, cpu_seconds, default_clip, describe, plain_transcode

GRAPH = REPO / "graphs" / "transcode.json"
LONG_FACTOR = 10
CHILD_FLAG = "--_peak-child"  # hidden: run the graph once and print peak RSS as JSON


def run_graph(clip: Path, out: Path, preset: str, crf: int) -> int:
    """Validate and run the transcode graph the way ``swapgraph run --set ...`` does; frames written."""
    graph = validate_graph(load_graph_document(GRAPH), default_registry(), path=GRAPH,
                           overrides=[f"plate.path={clip}", f"out.path={out}", "out.codec=libx264",
                                      f"out.crf={crf}", f"out.preset={preset}"])
    return Executor(graph).run().frames


def make_long_clip(clip: Path, out: Path, times: int) -> int:
    """Write ``clip`` ``times`` times in a row (decoded once, libx264 ultrafast, audio re-encoded); frames."""
    with av.open(str(clip)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        fps = Fraction(vin.average_rate or vin.guessed_rate or 25)
        width, height = vin.codec_context.width, vin.codec_context.height
        # native (yuv) frames: half the memory of RGB, and no conversion on the way back
        video = list(inp.decode(vin))
        audio = []
        if inp.streams.audio:
            inp.seek(0)
            audio = list(inp.decode(inp.streams.audio[0]))
    with av.open(str(out), "w") as dst:
        vout = dst.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.options = {"crf": "18", "preset": "ultrafast"}
        aout = None
        if audio:
            rate = audio[0].sample_rate
            aout = dst.add_stream("aac", rate=rate)
            aout.layout = audio[0].layout.name
        n = samples = 0
        for _ in range(times):
            for frame in video:
                frame.pts, frame.time_base = n, 1 / fps
                dst.mux(vout.encode(frame))
                n += 1
            for frame in audio:
                frame.pts, frame.time_base = samples, Fraction(1, rate)
                dst.mux(aout.encode(frame))
                samples += frame.samples
        dst.mux(vout.encode(None))
        if aout is not None:
            dst.mux(aout.encode(None))
    return n


def _proc_status_kib(key: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(key + ":")))


def peak_child(clip: Path, out: Path, preset: str, crf: int) -> None:
    # RSS once the modules (torch above all) are in: the part of the peak that no clip length changes
    base_kib = _proc_status_kib("VmRSS")
    frames = run_graph(clip, out, preset, crf)
    print(json.dumps({"frames": frames, "base_kib": base_kib, "peak_kib": _proc_status_kib("VmHWM")}))


def measure_peak(clip: Path, out: Path, preset: str, crf: int) -> tuple[int, float, float]:
    """Run the graph in a fresh interpreter (nothing cached); (frames, RSS after imports, peak RSS) in MiB."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, str(clip), str(out),
                           preset, str(crf)], check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["frames"], report["base_kib"] / 1024, report["peak_kib"] / 1024


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == CHILD_FLAG:
        peak_child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, help=f"input clip (default {SHARED_CLIP})")
    ap.add_argument("--preset", default="veryfast", help="libx264 preset for both variants")
    ap.add_argument("--crf", type=int, default=18, help="libx264 crf for both variants")
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds of plain and graph")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    with tempfile.TemporaryDirectory(prefix="swapgraph-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = args.clip.resolve() if args.clip else default_clip(tmp)
        print(describe(clip))
        print(f"libx264 crf {args.crf} preset {args.preset}, yuv420p, audio remuxed\n")

        # CPU time (all threads) is less swayed than wall time by other load on a shared machine
        print(f"{'run':<16}{'frames':>8}{'seconds':>10}{'frames/s':>10}{'cpu s':>8}")
        variants = {"plain PyAV": plain_transcode, "graph": run_graph}
        best = {name: 0.0 for name in variants}
        best_cpu = {name: float("inf") for name in variants}
        for i in range(args.repeat):
            for name, fn in variants.items():
                c0, t0 = cpu_seconds(), time.perf_counter()
                frames = fn(clip, tmp / f"{name.split()[0]}{i}.mp4", args.preset, args.crf)
                seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                best[name] = max(best[name], frames / seconds)
                best_cpu[name] = min(best_cpu[name], cpu)
                print(f"{name + f' #{i + 1}':<16}{frames:>8}{seconds:>10.2f}{frames / seconds:>10.1f}{cpu:>8.2f}")

        long_clip = tmp / "long.mp4"
        t0 = time.perf_counter()
        long_frames = make_long_clip(clip, long_clip, LONG_FACTOR)
        print(f"\nmade {LONG_FACTOR}x clip: {long_frames} frames in {time.perf_counter() - t0:.1f} s")
        # the peak swings by ~100 MiB from run to run (in-flight batches, glibc keeping freed
        # heap); alternate and keep each one's lowest, as a leak would raise that floor too
        print(f"{'graph on':<16}{'frames':>8}{'after imports':>15}{'peak RSS':>10}{'seconds':>9}")
        peaks = {"clip": float("inf"), f"{LONG_FACTOR}x clip": float("inf")}
        for i in range(args.repeat):
            for label, src in zip(peaks, (clip, long_clip)):
                t0 = time.perf_counter()
                frames, base, peak = measure_peak(src, tmp / f"peak-{src.stem}.mp4", args.preset, args.crf)
                peaks[label] = min(peaks[label], peak)
                print(f"{label + f' #{i + 1}':<16}{frames:>8}{base:>11.0f} MiB{peak:>6.0f} MiB"
                      f"{time.perf_counter() - t0:>9.1f}")

        print(f"\nbest frames/s: plain PyAV {best['plain PyAV']:.1f}, graph {best['graph']:.1f}")
        print(f"cpu time ratio (plain PyAV / graph): {best_cpu['plain PyAV'] / best_cpu['graph']:.2f}")
        print(f"throughput ratio (graph / plain PyAV): {best['graph'] / best['plain PyAV']:.2f}  [target >= 0.9]")
        ratio = peaks[f"{LONG_FACTOR}x clip"] / peaks["clip"]
        print(f"peak memory ratio ({LONG_FACTOR}x longer clip / clip): {ratio:.2f}  [target <= 1.2]")


if __name__ == "__main__":
    main()
