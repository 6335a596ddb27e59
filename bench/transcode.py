"""Benchmark the transcode graph against a plain PyAV loop, as ratios from one run.

1. Throughput: ``graphs/transcode.json`` (Decode -> Encode) run through swapgraph's API,
   against a plain PyAV decode -> rgb24 ndarray -> encode loop that also remuxes the
   audio, on the same clip with the same libx264 settings. Runs alternate and the best
   time of each counts, because the machine is shared and noisy.
2. Peak memory: the graph on the clip and on the clip repeated ten times, each in a fresh
   subprocess that reports its own peak RSS (VmHWM). A streaming executor should need
   about the same memory for both.

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

REPO = Path(__file__).resolve().parents[1]
GRAPH = REPO / "graphs" / "transcode.json"
SHARED_CLIP = REPO.parent / "shared" / "data" / "clips" / "d3.mp4"
LONG_FACTOR = 10
CHILD_FLAG = "--_peak-child"  # hidden: run the graph once and print peak RSS as JSON


def run_graph(clip: Path, out: Path, preset: str, crf: int) -> int:
    """Validate and run the transcode graph the way ``swapgraph run --set ...`` does; frames written."""
    from swapgraph.runtime.executor import Executor
    from swapgraph.runtime.graph import load_graph_document, validate_graph
    from swapgraph.runtime.registry import default_registry

    graph = validate_graph(load_graph_document(GRAPH), default_registry(), path=GRAPH,
                           overrides=[f"plate.path={clip}", f"out.path={out}", "out.codec=libx264",
                                      f"out.crf={crf}", f"out.preset={preset}"])
    return Executor(graph).run().frames


def run_plain(clip: Path, out: Path, preset: str, crf: int) -> int:
    """The same work in plain PyAV: decode, round-trip through rgb24, encode, remux audio; frames written."""
    with av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"  # Decode threads its decoder too; a fair baseline does the same
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.options = {"crf": str(crf), "preset": preset}
        audio = {s.index: dst.add_stream_from_template(s) for s in inp.streams.audio}
        frames = 0
        for packet in inp.demux(vin, *inp.streams.audio):
            if packet.stream.index in audio:
                if packet.dts is not None:  # the demuxer's end-of-stream packet carries nothing
                    packet.stream = audio[packet.stream.index]
                    dst.mux(packet)
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24")
                new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                new.pts, new.time_base = frame.pts, frame.time_base
                dst.mux(vout.encode(new))
                frames += 1
        dst.mux(vout.encode(None))
    return frames


def make_long_clip(clip: Path, out: Path, times: int) -> int:
    """Write ``clip`` ``times`` times in a row (decoded once, libx264 ultrafast, audio re-encoded); frames."""
    with av.open(str(clip)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        fps = Fraction(vin.average_rate or vin.guessed_rate or 25)
        width, height = vin.codec_context.width, vin.codec_context.height
        # native (yuv) frames: half the memory of RGB, and no conversion on the way back
        video = list(inp.decode(vin))
        ain = inp.streams.audio[0] if inp.streams.audio else None
        audio = []
        if ain is not None:
            inp.seek(0)
            audio = list(inp.decode(ain))
            rate, layout = ain.codec_context.sample_rate, ain.codec_context.layout.name
    with av.open(str(out), "w") as dst:
        vout = dst.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.options = {"crf": "18", "preset": "ultrafast"}
        aout = None
        if audio:
            aout = dst.add_stream("aac", rate=rate)
            aout.layout = layout
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


def peak_child(clip: Path, out: Path, preset: str, crf: int) -> None:
    frames = run_graph(clip, out, preset, crf)
    status = Path("/proc/self/status").read_text()
    peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(json.dumps({"frames": frames, "peak_kib": peak_kib}))


def measure_peak(clip: Path, out: Path, preset: str, crf: int) -> tuple[int, float]:
    """Run the graph in a fresh interpreter (nothing imported or cached); (frames, peak RSS in MiB)."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, str(clip), str(out),
                           preset, str(crf)], check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["frames"], report["peak_kib"] / 1024


def default_clip(tmp: Path) -> Path:
    if SHARED_CLIP.is_file():
        return SHARED_CLIP
    from swapgraph.runtime.demo import animate_photo, packaged_photo, write_clip

    print(f"{SHARED_CLIP} not found; using a clip made from the packaged grace_hopper photo")
    return write_clip(tmp / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), 150))


def describe(clip: Path) -> str:
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        audio = ", ".join(s.codec_context.name for s in c.streams.audio) or "none"
        return (f"{clip.name}: {v.codec_context.width}x{v.codec_context.height}, {v.frames} frames "
                f"@ {float(v.average_rate):.3g} fps, audio {audio}")


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

    with tempfile.TemporaryDirectory(prefix="swapgraph-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clip = args.clip.resolve() if args.clip else default_clip(tmp)
        print(describe(clip))
        print(f"libx264 crf {args.crf} preset {args.preset}, yuv420p, audio remuxed\n")

        print(f"{'run':<16}{'frames':>8}{'seconds':>10}{'frames/s':>10}")
        best = {"plain PyAV": 0.0, "graph": 0.0}
        variants = {"plain PyAV": run_plain, "graph": run_graph}
        for i in range(args.repeat):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                frames = fn(clip, tmp / f"{name.split()[0]}{i}.mp4", args.preset, args.crf)
                seconds = time.perf_counter() - t0
                best[name] = max(best[name], frames / seconds)
                print(f"{name + f' #{i + 1}':<16}{frames:>8}{seconds:>10.2f}{frames / seconds:>10.1f}")

        long_clip = tmp / "long.mp4"
        t0 = time.perf_counter()
        long_frames = make_long_clip(clip, long_clip, LONG_FACTOR)
        print(f"\nmade {LONG_FACTOR}x clip: {long_frames} frames in {time.perf_counter() - t0:.1f} s")
        peaks = {}
        for label, src in (("clip", clip), (f"{LONG_FACTOR}x clip", long_clip)):
            t0 = time.perf_counter()
            frames, peaks[label] = measure_peak(src, tmp / f"peak-{src.stem}.mp4", args.preset, args.crf)
            print(f"peak RSS, graph on {label:<9}{frames:>6} frames: {peaks[label]:7.1f} MiB "
                  f"({time.perf_counter() - t0:.1f} s)")

        print(f"\nbest frames/s: plain PyAV {best['plain PyAV']:.1f}, graph {best['graph']:.1f}")
        print(f"throughput ratio (graph / plain PyAV): {best['graph'] / best['plain PyAV']:.2f}  [target >= 0.9]")
        ratio = peaks[f"{LONG_FACTOR}x clip"] / peaks["clip"]
        print(f"peak memory ratio ({LONG_FACTOR}x longer clip / clip): {ratio:.2f}  [target <= 1.2]")


if __name__ == "__main__":
    main()
