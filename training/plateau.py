"""When to stop, read from the validation curve.

Only recent validations count (the first minutes' fast drop would pull any one curve through
the whole run): the slope of the last octave of steps in log-step, with its standard error,
says how much training half as long again should still gain, and ``until_plateau`` stops once
even the top of that interval is under 1% of the score (not before step 3000: the mean-face
stage looks flat too); a power law or an exponential on the last three octaves estimates the
plateau, with a band wide enough for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

# the stopping rule: stop once training half as long again is expected to improve validation by
# under 1%, even at the top of a one-sided 95% interval
STOP_HORIZON = 0.5
STOP_GAIN = 0.01
MIN_POINTS = 5
# an untrained autoencoder first learns the mean face and its validation stays flat a while
# (lite-64 on the d18/d19 pair: 0.16 from step 150 to about 950, then falling to 0.06): no
# curve test can tell that from a plateau, so ``until_plateau`` waits three times as long
MIN_STOP_STEP = 3000


@dataclass(frozen=True)
class Plateau:
    """When to stop, read from the validation curve: a trend test and a plateau estimate.

    Both look only at recent scores, so the first minutes' fast drop cannot pull them (one
    exponential through the whole run put the plateau above a score the run had already beaten).

    - trend: a straight line in log-step, ``v ≈ current + q·ln(t/step)``, through the last octave
      of steps (``step/2..step``). ``gain`` is the fall it predicts over the next
      ``STOP_HORIZON·step`` steps and ``gain_se`` its standard error, widened for residuals
      that run in streaks. A line in log-step never flattens, so it over- rather than
      under-states what is left: the rule errs towards training on.
    - plateau: ``c + a·(t/step)^-b`` (``model="power"``) or ``c + a·exp(-(t-step)/b)``
      (``"exp"``), whichever fits the last three octaves (``step/8..step``) better; ``band``
      holds both fits' 90% intervals for ``c``, since the data rarely tell the two shapes
      apart and they extrapolate differently. None where neither fit converges.

    Steps are training steps; ``step`` is the last validated one.
    """

    step: int
    current: float  # the trend line at ``step``: less noisy than the last score
    gain: float
    gain_se: float
    t_crit: float  # one-sided 95% Student t for the residuals' effective number of points
    window: tuple[int, int]  # the trend's first and last step
    fit_start: int  # the plateau fits' first step
    model: Literal["power", "exp"] | None = None
    c: float | None = None
    band: tuple[float, float] | None = None
    a: float = 0.0  # the fit's excess over ``c`` at ``step``
    b: float = 1.0  # the power law's exponent, or the exponential's time constant in steps

    @property
    def horizon(self) -> int:
        return round(STOP_HORIZON * self.step)

    @property
    def gain_high(self) -> float:
        return self.gain + self.t_crit * self.gain_se

    @property
    def flat(self) -> bool:
        """The stopping rule: even the top of the gain's interval is under ``STOP_GAIN`` of the score."""
        return self.gain_high < STOP_GAIN * self.current

    @property
    def stops(self) -> bool:
        """What ``until_plateau`` does: flat, and past the mean-face stage (``MIN_STOP_STEP``)."""
        return self.flat and self.step >= MIN_STOP_STEP

    @property
    def still_falling(self) -> bool:
        """Clearly worth going on: even the bottom of the gain's interval is over ``STOP_GAIN``."""
        return self.gain - self.t_crit * self.gain_se > STOP_GAIN * self.current

    def per_1000(self) -> tuple[float, float]:
        """Expected fall of the score over the next 1000 steps, and its standard error."""
        k = math.log1p(1000 / self.step) / math.log1p(STOP_HORIZON)
        return self.gain * k, self.gain_se * k

    def trend(self, t: np.ndarray) -> np.ndarray:
        q = -self.gain / math.log1p(STOP_HORIZON)
        return self.current + q * np.log(np.asarray(t, np.float64) / self.step)

    def value(self, t: np.ndarray) -> np.ndarray:
        """The plateau fit at steps ``t`` (> 0); NaN without a fit."""
        x = np.asarray(t, np.float64)
        if self.model is None:
            return np.full_like(x, np.nan)
        return _MODELS[self.model](x, self.c, self.a, self.b, self.step)

    def stop_step(self) -> int | None:
        """Where the plateau fit expects the rule to fire (on its expected gain, not the interval's
        top, so the real stop comes later). None without a fit, with a band down to 0 (the tail
        has not begun to bend), beyond 100 times ``step``, or where the fit says "now" and the
        trend says otherwise."""
        if self.flat:
            return max(self.step, MIN_STOP_STEP)
        if self.model is None or self.band[0] <= 0:
            return None
        t = np.geomspace(self.step, 100 * self.step, 500)
        v = self.value(t)
        hit = np.flatnonzero(v - self.value(t * (1 + STOP_HORIZON)) < STOP_GAIN * v)
        return max(int(round(t[hit[0]])), MIN_STOP_STEP) if len(hit) and hit[0] > 0 else None


def _power(t: np.ndarray, c: float, a: float, b: float, last: float) -> np.ndarray:
    return c + a * (t / last) ** -b


def _exp(t: np.ndarray, c: float, a: float, b: float, last: float) -> np.ndarray:
    return c + a * np.exp(-(t - last) / b)


_MODELS = {"power": _power, "exp": _exp}


def _recent(t: np.ndarray, start: float) -> np.ndarray:
    """Mask of the points from ``start`` on, widened to the last ``MIN_POINTS`` if too few."""
    keep = t >= start
    if keep.sum() < MIN_POINTS:
        keep = np.arange(len(t)) >= len(t) - MIN_POINTS
    return keep


def _effective_points(residuals: np.ndarray) -> float:
    """``n·(1-ρ)/(1+ρ)`` for lag-1 autocorrelation ρ: scores that drift together count for less."""
    n = len(residuals)
    if n < 4 or not residuals.any():
        return float(n)
    rho = min(max(float(np.corrcoef(residuals[:-1], residuals[1:])[0, 1]), 0.0), 0.95)
    return max(3.0, n * (1 - rho) / (1 + rho))


def _fit_tail(t: np.ndarray, y: np.ndarray, model: str) -> tuple[float, np.ndarray, float] | None:
    """Least squares of one plateau model on ``t, y``: (squared error, (c, a, b), 90% half-width of c)."""
    from scipy.optimize import curve_fit

    last, span = float(t[-1]), float(t[-1] - t[0])
    f = _MODELS[model]
    # the shapes kept to what the window can measure: a slower decay is a straight line whose
    # c slides anywhere below the scores (a flat tail would read "plateau in 0..now")
    if model == "power":
        starts, bounds = (0.3, 1.0, 3.0), ([0, 0, 0.2], [np.inf, np.inf, 10])
    else:
        starts, bounds = (span / 10, span / 3, span), ([0, 0, span / 20], [np.inf, np.inf, 2 * span])
    best = None
    for b0 in starts:  # a few starts: neither fit is convex in b
        c0 = 0.9 * y.min()
        try:
            p, cov = curve_fit(lambda s, c, a, b: f(s, c, a, b, last), t, y, p0=(c0, max(y[-1] - c0, 1e-6), b0),
                               bounds=bounds, maxfev=5000)
        except (RuntimeError, ValueError):
            continue
        err = float(((f(t, *p, last) - y) ** 2).sum())
        if best is None or err < best[0]:
            best = (err, p, cov)
    if best is None:
        return None
    err, p, cov = best
    var_c = float(cov[0, 0]) * len(y) / _effective_points(y - f(t, *p, last))
    return err, p, 1.645 * math.sqrt(var_c) if math.isfinite(var_c) else math.inf


def fit_plateau(steps: list[float], values: list[float]) -> Plateau | None:
    """The trend and plateau of a validation curve (see :class:`Plateau`).

    steps: increasing training steps, shape (N,); values: the score at each, shape (N,).
    Step 0 (the untrained model) is left out; None with fewer than ``MIN_POINTS`` others.
    """
    from scipy.stats import t as student_t

    t = np.asarray(steps, np.float64)
    y = np.asarray(values, np.float64)
    t, y = t[t > 0], y[t > 0]
    if len(t) < MIN_POINTS:
        return None
    last = float(t[-1])

    w = _recent(t, last / 2)
    x = np.stack([np.ones(w.sum()), np.log(t[w] / last)], 1)
    coef, *_ = np.linalg.lstsq(x, y[w], rcond=None)
    resid = y[w] - x @ coef
    n, n_eff = len(resid), _effective_points(resid)
    var = float(resid @ resid) / max(n - 2, 1) * np.linalg.inv(x.T @ x)[1, 1] * n / n_eff
    horizon = math.log1p(STOP_HORIZON)
    f = _recent(t, last / 8)
    est = Plateau(step=int(last), current=float(coef[0]), gain=float(-coef[1] * horizon),
                  gain_se=math.sqrt(var) * horizon, t_crit=float(student_t.ppf(0.95, max(n_eff - 2, 1))),
                  window=(int(t[w][0]), int(last)), fit_start=int(t[f][0]))

    fits = {m: r for m in _MODELS if (r := _fit_tail(t[f], y[f], m)) is not None}
    if not fits:
        return est
    model = min(fits, key=lambda m: fits[m][0])
    c, a, b = (float(v) for v in fits[model][1])
    # the plateau is not above either fit's present value, c + a
    low = min(max(0.0, r[1][0] - r[2]) for r in fits.values())
    high = max(min(r[1][0] + r[2], r[1][0] + r[1][1]) for r in fits.values())
    return replace(est, model=model, c=c, band=(float(low), float(high)), a=a, b=b)


def per_1000_text(p: Plateau) -> str:
    """The trend as a share of the score: ``-0.52%±0.10% per 1000 steps``."""
    gain, se = p.per_1000()
    return f"{-100 * gain / p.current:+.2f}%±{100 * se / p.current:.2f}% per 1000 steps"


def plateau_text(p: Plateau) -> str:
    """The plateau estimate and its band, for a fitted ``p`` (``p.c`` not None)."""
    # a band down to 0 means the tail has not begun to bend: no centre is worth printing
    if p.band[0] > 0:
        return f"plateau ~{p.c:.4f} ({p.band[0]:.4f}–{p.band[1]:.4f})"
    return f"plateau not in sight (below {p.band[1]:.4f})"


def describe_plateau(p: Plateau) -> str:
    """One line: the state, the trend per 1000 steps, the plateau band and the expected stop."""
    state = "flat" if p.flat else "still falling" if p.still_falling else "flattening"
    text = f"{state}, {per_1000_text(p)}"
    if p.c is not None:
        text += f", {plateau_text(p)}"
    stop = p.stop_step()
    return text + (", the plateau rule stops here" if p.stops else
                   f", the plateau rule waits for step {MIN_STOP_STEP}" if p.flat else
                   f", stop expected ~step {stop}" if stop is not None else ", no stop in sight")
