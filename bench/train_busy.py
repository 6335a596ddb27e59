"""Benchmark training on a busy machine: images/s while another process keeps one core
busy, with torch's default threads and with the threads the trainer sizes to the cores it
can get, as ratios to the idle speed from one run.

The step is a real ``Trainer.train_step`` (sampling, augmentation, loss, Adam) on two
synthetic facesets (see ``bench/train.py``). The busy neighbour is a second Python process
spinning on one core, as a farm job or an encode beside the training would be. The
trainer's threads are what it picks itself (``runtime.devices.usable_cores``, read again
every 10 s of training). The idle speed on one thread fewer is the bound: what the cores
left can do at best. Runs alternate and the best of each counts.

    python bench/train_busy.py [--preset lite-64] [--batch 16] [--steps 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from swapgraph.runtime.devices import allowed_cores, usable_cores

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import swapgraph_loop, timed  # noqa: E402 - the training benchmark's Trainer on synthetic facesets


def spinner() -> subprocess.Popen:
    """A process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="lite-64")
    ap.add_argument("--batch", type=int, default=16, help="faces per identity per step (default 16, train's)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run")
    ap.add_argument("--repeat", type=int, default=2, help="alternating rounds")
    args = ap.parse_args()
    device = torch.device("cpu")
    cores = allowed_cores()
    print(f"CPU, {cores} cores allowed; {args.preset}, batch {args.batch} per identity, {args.steps} timed steps a run")
    with tempfile.TemporaryDirectory(prefix="swapgraph-bench-") as tmp:
        step, _ = swapgraph_loop(args.preset, args.batch, device, False, Path(tmp))
        torch.set_num_threads(cores)
        timed(step, 2, device)  # warm-up
        best = {"idle": 0.0, "idle, one thread fewer": 0.0, "busy, torch's default threads": 0.0,
                "busy, the trainer's threads": 0.0}
        chosen = {}
        for i in range(args.repeat):
            for name in best:
                busy = spinner() if name.startswith("busy") else None
                try:
                    if busy is not None:
                        time.sleep(0.5)  # the neighbour is running before the trainer looks
                    threads = {"busy, torch's default threads": cores,
                               "idle, one thread fewer": max(1, cores - 1)}.get(name) or usable_cores()
                    torch.set_num_threads(threads)
                    chosen[name] = threads
                    seconds = timed(step, args.steps, device)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                ips = 2 * args.batch * args.steps / seconds
                best[name] = max(best[name], ips)
                print(f"{name + f' #{i + 1}':<36}{threads:>3} threads{seconds:>9.2f} s{ips:>9.1f} images/s", flush=True)
    idle = best["idle"]
    print()
    for name, ips in best.items():
        print(f"{name}: {ips:.1f} images/s with {chosen[name]} threads, {idle / ips:.2f}x slower than idle")
    print(f"# the bound with one core taken: the idle speed on one thread fewer, "
          f"{idle / best['idle, one thread fewer']:.2f}x slower than idle")
    print("# target: the trainer's threads within 1.5x of its idle speed while another process busies a core")


if __name__ == "__main__":
    main()
