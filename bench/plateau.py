"""How far to trust the when-to-stop estimate: replay training logs and compare with what came next.

For each log and each prefix of it (every ``--every`` minutes of training, by the log's
``time``), both estimators see only the validations up to that point:

- old: ``c + a·exp(-t/τ)`` through the whole curve (the trainer's estimate before issue 10),
  whose ``--until plateau`` stopped once the step passed "within 1% of the plateau" (and 8
  validations);
- new: :func:`swapgraph.training.plateau.fit_plateau`, the log-step trend of the last octave
  and its interval, and a power law or exponential on the last three octaves for the plateau.

Against what the rest of the log shows: the score (a local log-step line through the
validations within 10% of the step, to take out the noise) at the end of the log and 50%
later, the step where the new estimator said the next 50% would gain. A plateau above a
score reached later is proven wrong. Then where each ``--until plateau`` rule would first
have stopped (with 8 validations at least) and how much the score still fell after it.

    python bench/plateau.py LOG.jsonl [LOG.jsonl ...] [--every 5]

The figure measured: the new gain forecast over the next 50% of steps against the gain the
log then showed (their ratio, per prefix and overall), and each rule's stop with the
improvement it left on the table.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from swapgraph.training.plateau import STOP_GAIN, STOP_HORIZON, fit_plateau


def read_validations(log: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """steps, scores and training seconds of the validation records of ``log.jsonl``, each shape (N,)."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "val" in r]
    return (np.array([r["step"] for r in rows], np.float64), np.array([r["val"] for r in rows], np.float64),
            np.array([r.get("time", 0.0) for r in rows], np.float64))


def smoothed(steps: np.ndarray, values: np.ndarray, at: float) -> float:
    """The score at step ``at``: a line in log-step through the validations within 10% of it."""
    near = (steps >= at / 1.1) & (steps <= at * 1.1) & (steps > 0)
    if near.sum() < 3:
        return float(np.interp(at, steps, values))
    q, p = np.polyfit(np.log(steps[near]), values[near], 1)
    return float(p + q * math.log(at))


def old_fit(steps: np.ndarray, values: np.ndarray) -> tuple[float, float] | None:
    """The trainer's former estimate: (plateau c, step within 1% of it) of ``c + a·exp(-t/τ)``."""
    from scipy.optimize import curve_fit

    if len(steps) < 5:
        return None
    t, y = steps, values
    span = max(t[-1] - t[0], 1.0)

    def f(x, c, a, tau):
        return c + a * np.exp(-(x - t[0]) / tau)

    best = None
    for tau0 in (span / 10, span / 3, span):
        try:
            p, _ = curve_fit(f, t, y, p0=(y.min(), max(y[0] - y.min(), 1e-6), tau0),
                             bounds=([0, 0, span / 1000], [np.inf, np.inf, span * 100]), maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        err = float(((f(t, *p) - y) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, p)
    if best is None:
        return None
    c, a, tau = best[1]
    a0 = a * math.exp(t[0] / tau)
    return float(c), (max(0.0, tau * math.log(a0 / (0.01 * c))) if a0 > 0 and c > 0 else 0.0)


def first_stops(steps: np.ndarray, values: np.ndarray) -> dict[str, int | None]:
    """The first validation step at which each ``--until plateau`` rule would have stopped."""
    stops: dict[str, int | None] = {"old": None, "new": None}
    for i in range(8, len(steps) + 1):
        t, y = steps[:i], values[:i]
        if stops["old"] is None and (o := old_fit(t, y)) is not None and t[-1] >= o[1]:
            stops["old"] = int(t[-1])
        if stops["new"] is None and (p := fit_plateau(list(t), list(y))) is not None and p.stops:
            stops["new"] = int(t[-1])
        if all(v is not None for v in stops.values()):
            break
    return stops


def replay(log: Path, every: float) -> list[tuple[float, float, float]]:
    """Print the table for one log; return (forecast gain, its interval's top, actual gain) per prefix."""
    steps, values, seconds = read_validations(log)
    end, end_val = steps[-1], smoothed(steps, values, steps[-1])
    later_min = np.minimum.accumulate(values[::-1])[::-1]  # the best score from each validation on
    print(f"\n{log}: {int(end)} steps in {seconds[-1] / 60:.1f} min, validation {values[-1]:.4f} "
          f"(smoothed {end_val:.4f})")
    print(f"{'min':>4} {'step':>6} {'val':>7} | {'old plateau':>11} {'1% step':>7} {'stop':>4} | "
          f"{'new plateau [90% band]':>24} {'state':>13} {'gain +50% [hi]':>16} | "
          f"{'actual +50%':>11} {'ratio':>5} | {'later min':>9} {'old':>5} {'new':>5}")
    ratios: list[tuple[float, float, float]] = []
    seen = set()
    for minutes in np.arange(every, seconds[-1] / 60, every):
        i = int(np.searchsorted(seconds, minutes * 60, side="right"))
        if i in seen:  # no validation in this stretch (a stalled or shared machine)
            continue
        seen.add(i)
        t, y = steps[:i], values[:i]
        now = smoothed(steps[:i], values[:i], t[-1])
        o, p = old_fit(t, y), fit_plateau(list(t), list(y))
        future = later_min[i] if i < len(values) else math.nan
        target = t[-1] * (1 + STOP_HORIZON)
        actual = now - smoothed(steps, values, target) if target <= end else math.nan
        old_txt = (f"{o[0]:11.4f} {int(o[1]):7d} {'yes' if len(t) >= 8 and t[-1] >= o[1] else 'no':>4}" if o
                   else f"{'-':>11} {'-':>7} {'-':>4}")
        if p is None:
            print(f"{minutes:4.0f} {int(t[-1]):6d} {now:7.4f} | {old_txt} | {'(too few validations)':>24}")
            continue
        state = "stop" if p.stops else "flat, early" if p.flat else "still falling" if p.still_falling \
            else "flattening"
        band = f"{p.c:.4f} [{p.band[0]:.4f},{p.band[1]:.4f}]" if p.c is not None else "-"
        ratio = p.gain / actual if math.isfinite(actual) and actual > 0 else math.nan
        if math.isfinite(actual):
            ratios.append((p.gain, p.gain_high, actual))
        wrong_old = "WRONG" if o and future < o[0] else "ok"
        wrong_new = "WRONG" if p.band is not None and future < p.band[0] else "ok"
        print(f"{minutes:4.0f} {int(t[-1]):6d} {now:7.4f} | {old_txt} | {band:>24} {state:>13} "
              f"{p.gain:7.4f} [{p.gain_high:.4f}] | {actual:11.4f} {ratio:5.2f} | {future:9.4f} "
              f"{wrong_old:>5} {wrong_new:>5}")
    stops = first_stops(steps, values)
    for rule, at in stops.items():
        if at is None:
            print(f"{rule} --until plateau: would not have stopped within the log")
            continue
        before, after = smoothed(steps, values, at), end_val
        promise = f"; next {STOP_HORIZON:.0%} gained {before - smoothed(steps, values, at * (1 + STOP_HORIZON)):.4f}" \
            if at * (1 + STOP_HORIZON) <= end else ""
        print(f"{rule} --until plateau: stops at step {at} (val {before:.4f}); the log fell another "
              f"{before - after:.4f} ({(before - after) / before:.1%}) by step {int(end)}{promise} "
              f"(the rule wants under {STOP_GAIN:.0%} = {STOP_GAIN * before:.4f})")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="log.jsonl files of training runs")
    parser.add_argument("--every", type=float, default=5.0, help="a prefix every this many minutes")
    args = parser.parse_args()
    gains = np.array([g for log in args.logs for g in replay(log, args.every)]).reshape(-1, 3)
    if len(gains):
        forecast, top, actual = gains.T
        ratio = forecast[actual > 0] / actual[actual > 0]
        print(f"\nover the next {STOP_HORIZON:.0%} of steps, {len(gains)} prefixes: the actual gain was under the "
              f"forecast's 95% top in {(actual <= top).sum()}/{len(gains)}; forecast/actual median "
              f"{np.median(ratio) if len(ratio) else math.nan:.2f}, range "
              f"{ratio.min() if len(ratio) else math.nan:.2f}..{ratio.max() if len(ratio) else math.nan:.2f} "
              f"(>1: it over-states what is left, the safe side for stopping)")


if __name__ == "__main__":
    main()
