"""Benchmark ``swapgraph swap`` against the five commands it replaces, as ratios from one run.

Two shots made from the packaged photos (``--frames`` frames, 384 px); all in one run:

1. the five commands a user ran before, each its own process as typed at a shell:
   ``run extract.json`` twice, ``train``, ``run swap.json`` and ``qc``;
2. ``swapgraph swap PLATE FACE --out OUT`` with the same steps: one process;
3. the same ``swap`` again (every stage's key matches: no work), against (2).

The ratio (2)/(1) is what the one command costs or saves over the steps it runs (it
hashes the inputs and checks the graph first, and starts Python once).

    python bench/swap.py [--frames 48] [--steps 40]
"""

from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, animate_photo, packaged_photo, write_clip

GRAPHS = REPO / "graphs"


def sh(*args: str | Path) -> float:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "swapgraph.cli", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{done.stderr}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        plate = write_clip(tmp / "astronaut.mp4", animate_photo(packaged_photo("astronaut"), args.frames,
                                                                size=(384, 384)))
        face = write_clip(tmp / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), args.frames,
                                                           size=(384, 384), pan=-0.06))
        steps = [("extract plate", ("run", GRAPHS / "extract.json", "--set", f"plate.path={plate}", "--set",
                                    f"faceset.path={tmp / 'a'}", "--quiet")),
                 ("extract face", ("run", GRAPHS / "extract.json", "--set", f"plate.path={face}", "--set",
                                   f"faceset.path={tmp / 'b'}", "--quiet")),
                 ("train", ("train", "--a", tmp / "a", "--b", tmp / "b", "--out", tmp / "model", "--steps",
                            str(args.steps), "--quiet",
                            # the cadence swap gives a short run, so both validate as often
                            "--val-every", str(max(10, args.steps // 6)), "--preview-every",
                            str(max(25, args.steps // 3)))),
                 ("convert", ("run", GRAPHS / "swap.json", "--set", f"plate.path={plate}", "--set",
                              f"swap.model={tmp / 'model'}", "--set", f"out.path={tmp / 'five.mp4'}", "--quiet")),
                 ("qc", ("qc", tmp / "five.mp4", "--source", plate))]
        times = {name: sh(*cmd) for name, cmd in steps}
        five = sum(times.values())
        print(f"{args.frames} frames, {args.steps} steps of lite-64")
        print("five commands: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f"; total {five:.1f} s")
        one = sh("swap", plate, face, "--out", tmp / "one.mp4", "--steps", str(args.steps), "--bank", "never",
                 "--quiet")
        print(f"swapgraph swap: {one:.1f} s = {one / five:.2f} of the five commands")
        again = sh("swap", plate, face, "--out", tmp / "one.mp4", "--steps", str(args.steps), "--bank", "never",
                   "--quiet")
        print(f"swapgraph swap again (nothing to do): {again:.1f} s = {again / one:.3f} of the first")


if __name__ == "__main__":
    main()
