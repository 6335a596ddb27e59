"""The One-Euro filter over landmarks, run over a window of recent frames."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np


class OneEuroFilter:
    """The One-Euro filter (Casiez et al. 2012) over arrays, one cutoff per point.

    A low-pass whose cutoff rises with speed: ``min_cutoff`` (Hz) smooths a still point
    hard, ``beta`` opens the filter as the point moves, so fast motion is not lagged.
    Speed is measured in ``scale`` units per second (a face size), so one setting suits
    faces of any size in the frame.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, scale: float) -> np.ndarray:
        """Filter points ``x`` (K, D) observed at time ``t`` seconds."""
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.astype(np.float64), np.zeros((x.shape[0], 2)), t
            return x
        dt = t - self.t
        # the velocity is low-passed before its magnitude is taken, so jitter (which
        # changes sign every frame) averages out and does not open the filter
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * (x[:, :2] - self.x[:, :2]) / dt + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(self.dx, axis=1) / max(scale, 1e-6)
        a = self._alpha(cutoff, dt)[:, None]
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.astype(x.dtype)


def face_scale(landmarks: np.ndarray) -> float:
    """A face's size in pixels: the distance between the outer eye corners."""
    return float(np.linalg.norm(landmarks[263, :2] - landmarks[33, :2]))


def one_euro_window(entries: Iterable[tuple[float, np.ndarray, float]], min_cutoff: float, beta: float,
                    d_cutoff: float) -> np.ndarray:
    """The output at the last of ``entries`` (time s, points, scale), oldest first, of a
    fresh :class:`OneEuroFilter` run over them (the first entry initialises it).

    It differs from the filter run over the whole history only by the weight the older
    history would still have, the product of (1 - alpha) over the entries; and it depends
    on these entries alone, never on where a run started.
    """
    filt = OneEuroFilter(min_cutoff, beta, d_cutoff)
    out = None
    for t, x, scale in entries:
        out = filt(x, t, scale)
    if out is None:
        raise ValueError("one_euro_window: no entries")
    return out
