"""The most quality per minute of training: training recipes compared at equal wall time.

On a shared pair (A = the plate's person, B = the face to put on it; d18 -> d19 by
default), in one run:

1. facesets of both clips are extracted with ``graphs/extract.json`` (kept in ``--work``);
2. every variant (a set of ``swapgraph train`` flags) trains for the same ``--minutes``,
   all at once, each in its own process with an equal share of the cores, so a busy
   machine slows them alike and none gets a quieter minute than another;
3. every model converts the same frames of A's clip with ``graphs/swap.json`` (lossless
   FFV1 output), and ``swapgraph qc`` measures them against the plate, with identity
   against both facesets;
4. the table: steps trained, the model's own validation score, a face score common to all
   variants (L1 + DSSIM of A->A and B->B on the held-out faces, in crop pixels, on the
   face from the brows down inside the square every variant renders, so models that
   render different squares are compared on the same pixels), then identity, edges,
   colour ΔE, sharpness ratio, expression error and flicker; and the ratios of the last
   variant over the first.

Variants are ``NAME=FLAGS``; the defaults are ``today`` (the recipe before issue 10, spelt
out flag by flag so it stays that recipe whatever the defaults become), ``render224`` (that
recipe with the whole face rendered) and ``new`` (the defaults of ``swapgraph train`` now).

    python bench/quality.py [--minutes 10] [--frames 0-89] [--pair d18,d19] [--work DIR]
                            [--variant NAME="--flag value ..."]... [--classic] [--reuse]
"""

from __future__ import annotations

import os

os.environ.setdefault("GLOG_minloglevel", "2")

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kornia
import numpy as np
import torch

from _common import REPO

CLIPS = REPO.parent / "shared" / "data" / "clips"
TODAY = ("--render 160 --lr 1e-4 --lr-warmup 0 --lr-decay none --no-icnr --feature-weight 0 --detail-weight 0 "
         "--warp 0.05 --batch-size 16")
VARIANTS = {"today": TODAY, "render224": TODAY.replace("--render 160", "--render 224"), "new": ""}
COLUMNS = [("identity", "identity", "{:.2f}"), ("b_share", "identity_b_share", "{:.2f}"),
           ("edges", "edges", "{:.2f}"), ("ΔE", "color_delta_e", "{:.2f}"), ("sharp", "sharpness_ratio", "{:.2f}"),
           ("expr", "expression_nme", "{:.3f}"), ("flicker", "flicker", "{:.2f}")]


def swapgraph(*args: str | Path, env: dict | None = None, quiet: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "swapgraph.cli", *map(str, args)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None,
                            stderr=subprocess.PIPE, text=True)


def check(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{err[-2000:]}")


def faceset(clip: Path, out: Path) -> Path:
    if not (out / "faceset.json").is_file():
        check(swapgraph("run", REPO / "graphs" / "extract.json", "--set", f"plate.path={clip}",
                        "--set", f"faceset.path={out}", "--quiet"), f"extracting {clip.name}")
    return out


def train_all(variants: dict[str, str], a: Path, b: Path, models: Path, minutes: float) -> dict[str, float]:
    """Train every variant at once for ``minutes``; returns each one's wall seconds."""
    threads = max(1, (os.cpu_count() or 1) // len(variants))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = {}
    start = time.perf_counter()
    for name, flags in variants.items():
        procs[name] = swapgraph("train", "--a", a, "--b", b, "--out", models / name, "--minutes", str(minutes),
                                "--val-every", "100", "--preview-every", "1000000", "--quiet", *shlex.split(flags),
                                env=env)
    walls = {}
    for name, proc in procs.items():
        check(proc, f"training {name}")
        walls[name] = time.perf_counter() - start
    return walls


@torch.no_grad()
def face_score(model_dir: Path, facesets: dict[str, Path], render: int) -> float:
    """L1 + DSSIM of A->A and B->B on the held-out faces (the trainer's, same seeds), in
    crop pixels, on the face oval from the brows down inside the central ``render``
    square: the same pixels for every variant."""
    from swapgraph.nodes.align import model_input
    from swapgraph.nodes.resample import resize_images
    from swapgraph.nodes.swap_model import load_model
    from swapgraph.training.data import load_faceset

    model, info = load_model(model_dir)
    model.eval()
    own = info.render or info.coverage
    scores = []
    for seed, name in enumerate(("a", "b")):
        d = load_faceset(facesets[name], torch.device("cpu"), None, 16, seed)
        crops = d.crops[d.val].float() / 255
        y = model(model_input(crops, own, info.size), name)[:, :3].float()
        out = crops.clone()
        pad = (crops.shape[-1] - own) // 2
        out[..., pad:pad + own, pad:pad + own] = resize_images(y, (own, own), "bicubic").clamp(0, 1)
        keep = (d.masks[d.val].float() / 255)
        edge = (crops.shape[-1] - render) // 2
        region = torch.zeros_like(keep)
        region[..., edge:edge + render, edge:edge + render] = 1
        keep = keep * region
        n = keep.sum().clamp_min(1)
        l1 = float(((out - crops).abs() * keep).sum() / (3 * n))
        ssim = kornia.metrics.ssim(out, crops, 7)
        dssim = float(((1 - ssim) / 2 * keep).sum() / (3 * n))
        scores.append(l1 + dssim)
    return float(np.mean(scores))


def convert_and_measure(graph: Path, plate: Path, model: Path, out: Path, frames: str) -> dict:
    check(swapgraph("run", graph, "--set", f"plate.path={plate}", "--set", f"swap.model={model}",
                    "--set", f"out.path={out}", "--set", "out.codec=ffv1", "--frames", frames, "--quiet"),
          f"converting with {model.name}")
    check(swapgraph("qc", out, "--source", plate), f"qc of {out.name}")
    return json.loads(out.with_name(out.name + ".qc.json").read_text())["summary"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall time of every variant")
    ap.add_argument("--frames", default="0-89", help="the plate's frames to convert")
    ap.add_argument("--pair", default="d18,d19", help="A,B: clips in ../shared/data/clips")
    ap.add_argument("--work", help="folder for facesets, models and outputs (default: a temporary one)")
    ap.add_argument("--variant", action="append", metavar='NAME="FLAGS"',
                    help="a training recipe (repeatable); default: today and new")
    ap.add_argument("--classic", action="store_true", help="also convert the last variant with graphs/classic.json")
    ap.add_argument("--reuse", action="store_true", help="measure the models a previous run left in --work again")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else dict(VARIANTS)
    a_name, b_name = args.pair.split(",")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="swapgraph-quality-"))
    clip_a, clip_b = CLIPS / f"{a_name}.mp4", CLIPS / f"{b_name}.mp4"
    if not clip_a.is_file() or not clip_b.is_file():
        raise SystemExit(f"{clip_a} and {clip_b} are needed (../shared/data beside the project)")
    facesets = {"a": faceset(clip_a, work / "facesets" / a_name), "b": faceset(clip_b, work / "facesets" / b_name)}
    print(f"pair {a_name} -> {b_name}; {len(variants)} variants train side by side for {args.minutes:g} min each "
          f"on {os.cpu_count()} cores; then {args.frames} of {a_name} through graphs/swap.json")
    if args.reuse:
        walls = {n: float("nan") for n in variants}
    else:
        walls = train_all(variants, facesets["a"], facesets["b"], work / "models", args.minutes)
    infos = {n: json.loads((work / "models" / n / "model.json").read_text()) for n in variants}
    common = min(i.get("render") or i["coverage"] for i in infos.values())
    rows = []
    jobs = [(n, REPO / "graphs" / "swap.json") for n in variants]
    if args.classic:
        jobs.append((list(variants)[-1], REPO / "graphs" / "classic.json"))
    for name, graph in jobs:
        out = work / "out" / f"{name}-{graph.stem}.mkv"
        out.parent.mkdir(parents=True, exist_ok=True)
        qc = convert_and_measure(graph, clip_a, work / "models" / name, out, args.frames)
        t = infos[name]["training"]
        rows.append({"variant": name, "graph": graph.stem, "steps": t["steps"], "val": t["val"],
                     "face": face_score(work / "models" / name, facesets, common), **qc})
    head = ["variant", "graph", "steps", "val", "face"] + [c for c, _, _ in COLUMNS]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [r["variant"], r["graph"], str(r["steps"]), f"{r['val']:.4f}", f"{r['face']:.4f}"]
        cells += [fmt.format(r[key]) if r.get(key) is not None else "-" for _, key, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    first, last = rows[0], rows[len(variants) - 1]
    print("\nflags: " + "; ".join(f"{n}: {f or '(defaults)'}" for n, f in variants.items()))
    print("training wall time: " + ", ".join(f"{n} {walls[n]:.0f} s" for n in variants))
    print(f"{last['variant']} / {first['variant']}: face score {last['face'] / first['face']:.2f} (lower is better), "
          f"edges {last['edges'] / max(first['edges'], 1e-9):.2f} (lower), identity "
          f"{last['identity'] - first['identity']:+.2f} (towards B), ΔE "
          f"{last['color_delta_e'] / max(first['color_delta_e'], 1e-9):.2f} (lower)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
