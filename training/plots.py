"""The loss plot of a run, ``loss.png``: the whole run, and beside it when to stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from swapgraph.runtime.files import atomic_path

from .plateau import MIN_POINTS, STOP_GAIN, Plateau, per_1000_text, plateau_text


def plot_log(log: Path, out: Path, plateau: Plateau | None = None) -> None:
    """``loss.png``: the whole run (training loss, its running mean, validation) and, beside it,
    when to stop: the recent validations in log-step with the trend window and line, the
    plateau fit and its band, and where ``until_plateau`` stops or is expected to."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in log.read_text().splitlines():
        r = json.loads(line)
        (val if "val" in r else train).append(r)
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 4.5), dpi=100)
    if train:
        steps = [r["step"] for r in train]
        loss = np.array([r["loss"] for r in train])
        ax.plot(steps, loss, color="#9ab", lw=0.6, label="training loss")
        k = max(1, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="#246", lw=1.2, label=f"training loss, mean of {k}")
    if val:
        ax.plot([r["step"] for r in val], [r["val"] for r in val], "o-", color="#c40", ms=3,
                label="validation (held-out faces)")
    if plateau is not None and plateau.c is not None:
        ax.axhspan(*plateau.band, color="#888", alpha=0.2, lw=0, label=f"{plateau_text(plateau)}, 90% band")
    ax.set_xlabel("step")
    ax.set_ylabel("L1 + DSSIM")
    ax.set_title("the run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _plot_when_to_stop(zoom, [(r["step"], r["val"]) for r in val if r["step"] > 0], plateau)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _plot_when_to_stop(ax: Any, val: list[tuple[int, float]], p: Plateau | None) -> None:
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # step numbers, not 3x10^2 labels that overlap
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step (log)")
    ax.set_title("when to stop")
    ax.grid(alpha=0.3, which="both")
    if p is None:
        ax.text(0.5, 0.5, f"after {MIN_POINTS} validations", ha="center", transform=ax.transAxes)
        return
    shown = [(s, v) for s, v in val if s >= p.fit_start / 2]
    ax.plot(*zip(*shown), "o", color="#c40", ms=3, label="validation")
    stop = p.stop_step()
    end = p.step + p.horizon if stop is None else max(p.step + p.horizon, min(stop, 4 * p.step))
    ax.axvspan(*p.window, color="#28a", alpha=0.08, lw=0)
    t = np.geomspace(p.window[0], p.step + p.horizon, 50)
    ax.plot(t, p.trend(t), "-", color="#28a", lw=1.2, label=f"trend of the shaded window: {per_1000_text(p)}")
    ax.errorbar([p.step + p.horizon], [p.current - p.gain], yerr=[[p.t_crit * p.gain_se], [p.t_crit * p.gain_se]],
                color="#28a", capsize=3, label=f"gain over the next {p.horizon} steps, 90% interval "
                                               f"(stop under {STOP_GAIN * p.current:.4f})")
    if p.c is not None:
        t = np.geomspace(p.fit_start, end, 100)
        shape = f"c + a·t^-{p.b:.2f}" if p.model == "power" else f"c + a·exp(-t/{p.b:.0f})"
        ax.plot(t, p.value(t), "--", color="#c40", lw=0.9, label=f"fit {shape} from step {p.fit_start}")
        ax.axhspan(*p.band, color="#888", alpha=0.2, lw=0, label=f"{plateau_text(p)}, 90% band")
    if p.stops:
        ax.axvline(p.step, color="#080", lw=1, label=f"flat: the plateau rule stops at step {p.step}")
    elif p.flat:
        ax.axvline(stop, color="#080", lw=1, ls="-.", label=f"flat, but the plateau rule waits for step {stop}")
    elif stop is not None:
        ax.axvline(stop, color="#888", lw=1, ls="-.", label=f"expected stop ~step {stop}")
    else:
        ax.plot([], [], " ", label="no stop expected within 100x the steps so far")
    # the band may reach 0: frame the scores, the plateau and the interval, not all of the band
    low = min([v for _, v in shown] + [p.current - p.gain_high] + ([p.c] if p.c is not None else []))
    high = max(v for _, v in shown)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.legend(fontsize=7)
