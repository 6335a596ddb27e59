"""What a pretrained start is worth: a pair trained from a base against the same pair from
scratch, at equal per-pair minutes, in one run.

1. facesets of the pair and of the base's clips (clips that are not the pair) are extracted
   with ``graphs/extract.json`` (kept in ``--work``);
2. the base: ``swapgraph pretrain`` on the base's facesets for ``--base-minutes`` with all
   the cores (or ``--base DIR``, a base made before: its ``model.json`` says what it cost);
3. the pair twice, side by side, each with half the cores, for ``--minutes``: from scratch,
   and with ``--init`` the base (both with ``--flags``), so a busy machine slows them alike;
4. from their logs, the validation score of each at every minute of ``--at``, how many
   minutes scratch needed to reach what the started run had at each mark (the minutes the
   base saved the pair), and the first mark at which the base has paid for itself for a
   single pair (the started run at t as good as scratch at t + the base's cost, counted as
   the minutes scratch took here to train on as many images as the base did); then
   both models convert the same frames of A's clip and ``swapgraph qc`` measures them, with
   the face score of ``bench/quality.py``.

    python bench/pretrain.py [--pair d18,d19] [--base-clips d0,d3,d6,d9,d10,s20,s18] [--base-minutes 30]
                             [--base DIR] [--minutes 30] [--at 5,10,30] [--flags "..."] [--base-flags "..."]
                             [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
import time
from pathlib import Path

from quality import CLIPS, COLUMNS, REPO, check, convert_and_measure, face_score, faceset, swapgraph


def log(model: Path) -> list[dict]:
    """A run's ``log.jsonl``: a line per step and per validation."""
    return [json.loads(line) for line in (model / "log.jsonl").read_text().splitlines()]


def curve(rows: list[dict]) -> list[tuple[float, float]]:
    """(minutes, validation) of a run's log."""
    return [(r["time"] / 60, r["val"]) for r in rows if "val" in r]


def at(points: list[tuple[float, float]], minute: float) -> float | None:
    """The last validation at or before ``minute`` (None before the first or past the run)."""
    if not points or minute > points[-1][0] + 0.5:
        return None
    seen = [v for t, v in points if t <= minute]
    return seen[-1] if seen else None


def images(rows: list[dict]) -> tuple[int, float]:
    """(images trained on, seconds) of a run's log: a step of a pair trains 2 x batch
    images, a step of a base (one pooled identity) its batch."""
    steps = [r for r in rows if "loss" in r]
    per_step = 2 if any("loss_b" in r for r in steps) else 1
    return sum(per_step * r["batch"] for r in steps), (steps[-1]["time"] if steps else 0.0)


def minutes_to(points: list[tuple[float, float]], score: float) -> float | None:
    """When a run first reached ``score`` (None: never in its log)."""
    return next((t for t, v in points if v <= score), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pair", default="d18,d19", help="A,B: clips in ../shared/data/clips")
    ap.add_argument("--base-clips", default="d0,d3,d6,d9,d10,s20,s18", help="the clips of the base (not the pair)")
    ap.add_argument("--base-minutes", type=float, default=30.0, help="pretraining wall time, all cores")
    ap.add_argument("--base", help="a base made before (its model.json gives its cost); skips pretraining")
    ap.add_argument("--minutes", type=float, default=30.0, help="training wall time of each pair run")
    ap.add_argument("--at", default="5,10,30", help="the minute marks of the table")
    ap.add_argument("--flags", default="", help="train flags both pair runs take")
    ap.add_argument("--base-flags", help="pretrain flags of the base (default: the preset and render of --flags)")
    ap.add_argument("--frames", default="0-89", help="the plate's frames to convert")
    ap.add_argument("--work", help="folder for facesets, models and outputs (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="swapgraph-pretrain-"))
    a_name, b_name = args.pair.split(",")
    names = [a_name, b_name, *args.base_clips.split(",")]
    if set(names[:2]) & set(names[2:]):
        raise SystemExit(f"--base-clips {args.base_clips}: the base must not hold the pair's people")
    for n in names:
        if not (CLIPS / f"{n}.mp4").is_file():
            raise SystemExit(f"{CLIPS / (n + '.mp4')} is needed (../shared/data beside the project)")
    sets = {n: faceset(CLIPS / f"{n}.mp4", work / "facesets" / n) for n in names}
    flags = shlex.split(args.flags)
    base_flags = shlex.split(args.base_flags) if args.base_flags is not None else [
        f for i, f in enumerate(flags) if f in ("--preset", "--render") or (i > 0 and flags[i - 1] in ("--preset", "--render"))]

    if args.base:
        base = Path(args.base)
    else:
        base = work / "base"
        started = time.perf_counter()
        check(swapgraph("pretrain", *(sets[n] for n in names[2:]), "--out", base, "--minutes", str(args.base_minutes),
                        "--val-every", "100", "--preview-every", "1000000", "--quiet", "--force", *base_flags),
              "pretraining the base")
        print(f"base: {len(names) - 2} clips pretrained in {time.perf_counter() - started:.0f} s")
    info = json.loads((base / "model.json").read_text())
    base_minutes = info["training"]["seconds"] / 60
    faces = sum(f["faces"] for f in info["facesets"])
    print(f"base {base}: {faces} faces of {len(info['facesets'])} facesets, {info['training']['steps']} steps in "
          f"{base_minutes:.1f} min, validation {info['training']['val']:.4f}; flags {' '.join(base_flags) or 'defaults'}")

    threads = str(max(1, (os.cpu_count() or 1) // 2))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    runs = {"scratch": [], "init": ["--init", base]}
    procs = {name: swapgraph("train", "--a", sets[a_name], "--b", sets[b_name], "--out", work / "models" / name,
                             "--minutes", str(args.minutes), "--val-every", "50", "--preview-every", "1000000",
                             "--quiet", "--force", *flags, *extra, env=env)
             for name, extra in runs.items()}
    for name, proc in procs.items():
        check(proc, f"training {name}")
    logs = {name: log(work / "models" / name) for name in runs}
    curves = {name: curve(rows) for name, rows in logs.items()}

    # the base's cost in pair minutes: the images it trained on at the rate scratch trained here
    # (it ran on all the cores, each pair run on a share of them, so its own minutes would undercount)
    base_images, _ = images(log(base))
    scratch_images, scratch_seconds = images(logs["scratch"])
    base_cost = base_images / (scratch_images / (scratch_seconds / 60))
    print(f"the base trained on {base_images} images: {base_cost:.1f} min of one pair run here")
    marks = [float(m) for m in args.at.split(",")]
    print(f"\npair {a_name} -> {b_name}, {args.minutes:g} min each, side by side on {os.cpu_count()} cores "
          f"({threads} thread(s) each)\n")
    print("| pair minutes | scratch val | from base val | scratch reaches it at | minutes saved |")
    print("|---|---|---|---|---|")
    paid = None
    for m in marks:
        s, i = at(curves["scratch"], m), at(curves["init"], m)
        if s is None or i is None:
            print(f"| {m:g} | - | - | (past the run) | |")
            continue
        reach = minutes_to(curves["scratch"], i)
        saved = f"{reach - m:.1f}" if reach is not None else f"> {curves['scratch'][-1][0] - m:.1f}"
        print(f"| {m:g} | {s:.4f} | {i:.4f} | {f'{reach:.1f}' if reach is not None else 'never'} | {saved} |")
        later = reach if reach is not None else curves["scratch"][-1][0]  # never: at least past its end
        if paid is None and later >= m + base_cost:
            paid = m
    print(f"\nthe base ({base_cost:.1f} pair minutes) has paid for itself for one pair "
          + (f"by pair minute {paid:g}" if paid is not None else "at none of the marks")
          + "; for a studio it is made once and every pair after the first gains the minutes saved")

    common = min(json.loads((work / "models" / n / "model.json").read_text()).get("render") or 160 for n in runs)
    print("\n| run | steps | val | face | " + " | ".join(c for c, _, _ in COLUMNS) + " |")
    print("|---" * (4 + len(COLUMNS)) + "|")
    for name in runs:
        model = work / "models" / name
        out = work / "out" / f"{name}.mkv"
        out.parent.mkdir(parents=True, exist_ok=True)
        qc = convert_and_measure(REPO / "graphs" / "swap.json", CLIPS / f"{a_name}.mp4", model, out, args.frames)
        t = json.loads((model / "model.json").read_text())["training"]
        cells = [name, str(t["steps"]), f"{t['val']:.4f}",
                 f"{face_score(model, {'a': sets[a_name], 'b': sets[b_name]}, common):.4f}"]
        cells += [fmt.format(qc[key]) if qc.get(key) is not None else "-" for _, key, fmt in COLUMNS]
        print("| " + " | ".join(cells) + " |")
    print(f"\nwork folder: {work}")


if __name__ == "__main__":
    main()
