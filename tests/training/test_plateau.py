"""When to stop: the trend test, the plateau estimate and the loss plot, on synthetic validation curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from swapgraph.training.plateau import MIN_STOP_STEP, STOP_GAIN, Plateau, describe_plateau, fit_plateau
from swapgraph.training.plots import plot_log

STEPS = np.arange(0, 8001, 50, dtype=np.float64)  # a validation every 50 steps, as the trainer does


def two_timescales(t: np.ndarray) -> np.ndarray:
    """A fast early drop and a slow tail still falling at step 8000 (the issue's lite-64 run)."""
    return 0.05 + 0.2 * np.exp(-t / 150) + 0.03 * np.exp(-t / 4000)


def flat_tail(t: np.ndarray) -> np.ndarray:
    return 0.06 + 0.2 * np.exp(-t / 200)


def power_law(t: np.ndarray) -> np.ndarray:
    return 0.04 + 0.3 * (t + 100) ** -0.5


def noisy(curve, seed: int, sigma: float = 0.0007, end: float = 8000) -> tuple[list[float], list[float]]:
    steps = STEPS[STEPS <= end]
    return list(steps), list(curve(steps) + np.random.default_rng(seed).normal(0, sigma, len(steps)))


def single_exponential_stop(steps: list[float], values: list[float]) -> float:
    """The former estimate: ``c + a·exp(-t/τ)`` through the whole curve, and the step within 1% of c."""
    from scipy.optimize import curve_fit

    t, y = np.asarray(steps), np.asarray(values)
    (c, a, tau), _ = curve_fit(lambda x, c, a, tau: c + a * np.exp(-x / tau), t, y, p0=(y.min(), y[0] - y.min(), 1000),
                               bounds=([0, 0, 1], [np.inf, np.inf, 1e6]), maxfev=5000)
    return tau * math.log(a / (0.01 * c))


class TestTrend:
    @pytest.mark.parametrize("seed", range(3))
    def test_two_timescales_still_falling_where_one_exponential_stops(self, seed):
        steps, values = noisy(two_timescales, seed)
        assert single_exponential_stop(steps, values) < 2000  # the early drop pulls it: "stop" long ago
        p = fit_plateau(steps, values)
        assert p.still_falling and not p.flat
        true_gain = two_timescales(8000) - two_timescales(12000)
        assert true_gain <= p.gain_high and p.gain == pytest.approx(true_gain, rel=0.8)  # errs high, not low

    @pytest.mark.parametrize("seed", range(3))
    def test_flat_tail_stops(self, seed):
        p = fit_plateau(*noisy(flat_tail, seed))
        assert p.flat and p.stops and not p.still_falling
        assert p.gain_high < STOP_GAIN * p.current
        assert p.stop_step() == 8000

    @pytest.mark.parametrize("seed", range(3))
    def test_power_law_does_not_stop(self, seed):
        p = fit_plateau(*noisy(power_law, seed, end=4000))
        assert not p.flat  # 50% more steps still gain 2%

    def test_the_mean_face_stage_does_not_stop(self):
        # lite-64 learns the mean face first: flat at 0.16 for hundreds of steps, then falls on
        steps, values = noisy(lambda t: 0.16 + 0.12 * np.exp(-t / 40), 0, sigma=0.001, end=1500)
        p = fit_plateau(steps, values)
        assert p.flat and not p.stops and p.stop_step() == MIN_STOP_STEP
        assert describe_plateau(p).endswith(f"the plateau rule waits for step {MIN_STOP_STEP}")

    def test_rising_validation_stops(self):
        # over-fitting: the held-out score turns up; training on cannot help
        steps, values = noisy(lambda t: 0.06 + 0.2 * np.exp(-t / 200) + 1e-6 * t, 0)
        assert fit_plateau(steps, values).stops

    def test_an_early_drop_does_not_count(self):
        # the same tail after a violent start: the estimate only looks at the last octaves
        steps, values = noisy(flat_tail, 0)
        boosted = [v + (5.0 if s < 500 else 0.0) for s, v in zip(steps, values)]
        a, b = fit_plateau(steps, values), fit_plateau(steps, boosted)
        assert (a.gain, a.gain_se, a.c) == (b.gain, b.gain_se, b.c)

    def test_noise_widens_the_interval_and_delays_the_stop(self):
        calm = fit_plateau(*noisy(flat_tail, 0, sigma=0.0002))
        rough = fit_plateau(*noisy(flat_tail, 0, sigma=0.005))
        assert rough.gain_se > 5 * calm.gain_se
        assert calm.flat and not rough.flat

    def test_needs_five_validations_after_step_0(self):
        assert fit_plateau([0, 50, 100, 150, 200], [0.3, 0.2, 0.15, 0.12, 0.1]) is None
        assert fit_plateau([0, 50, 100, 150, 200, 250], [0.3, 0.2, 0.15, 0.12, 0.1, 0.09]) is not None

    def test_per_1000_steps(self):
        p = fit_plateau(*noisy(two_timescales, 0))
        gain, se = p.per_1000()
        # the log-step line at step 8000: a fall of q·ln(9/8) per 1000 steps
        assert gain == pytest.approx(p.gain * math.log(9 / 8) / math.log(1.5))
        assert 0 < se < gain
        assert describe_plateau(p).startswith(f"still falling, {-100 * gain / p.current:+.2f}%±")


class TestPlateau:
    @pytest.mark.parametrize("seed", range(3))
    def test_plateau_of_a_flat_tail(self, seed):
        p = fit_plateau(*noisy(flat_tail, seed))
        assert p.c == pytest.approx(0.06, rel=0.01)
        assert p.band[0] <= p.c <= p.band[1] and p.band[1] - p.band[0] < 0.002

    @pytest.mark.parametrize("seed", range(3))
    def test_plateau_of_a_power_law_lies_in_its_band(self, seed):
        p = fit_plateau(*noisy(power_law, seed))
        assert p.band[0] <= 0.04 <= p.band[1]
        assert p.c == pytest.approx(0.04, rel=0.2)  # the exponent and c trade off: trust the band
        assert p.value(np.array([8000.0]))[0] == pytest.approx(power_law(8000), abs=0.001)

    def test_slow_tail_lies_in_the_band(self):
        p = fit_plateau(*noisy(two_timescales, 0))
        assert p.band[0] <= 0.05 <= p.band[1] and p.band[1] < two_timescales(8000)

    def test_known_exponential(self):
        steps = np.arange(0, 3001, 50)
        values = 0.2 + 0.5 * np.exp(-steps / 400) + np.random.default_rng(0).normal(0, 0.003, len(steps))
        p = fit_plateau(steps, values)
        assert p.c == pytest.approx(0.2, rel=0.02) and p.band[0] <= 0.2 <= p.band[1]


def write_log(path: Path, curve, end: int = 8000) -> list[tuple[int, float]]:
    rng = np.random.default_rng(0)
    history = []
    with path.open("w") as f:
        for s in range(0, end + 1, 10):
            if s:
                f.write(json.dumps({"step": s, "loss": float(curve(s)) * 1.1 + rng.normal(0, 0.005)}) + "\n")
            if s % 50 == 0:
                history.append((s, float(curve(s)) + rng.normal(0, 0.0007)))
                f.write(json.dumps({"step": s, "val": history[-1][1], "time": s / 4}) + "\n")
    return history


class TestPlot:
    @pytest.mark.parametrize("curve", [two_timescales, flat_tail])
    def test_loss_png_is_written(self, tmp_path, curve):
        history = write_log(tmp_path / "log.jsonl", curve)
        plot_log(tmp_path / "log.jsonl", tmp_path / "loss.png", fit_plateau(*zip(*history)))
        from PIL import Image

        assert Image.open(tmp_path / "loss.png").size == (1300, 450)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "loss.png"]  # no partial file left

    def test_before_the_first_estimate(self, tmp_path):
        write_log(tmp_path / "log.jsonl", flat_tail, end=150)
        plot_log(tmp_path / "log.jsonl", tmp_path / "loss.png", None)
        assert (tmp_path / "loss.png").stat().st_size > 10_000

    def test_without_a_plateau_fit(self, tmp_path):
        history = write_log(tmp_path / "log.jsonl", flat_tail)
        p = fit_plateau(*zip(*history))
        bare = Plateau(step=p.step, current=p.current, gain=p.gain, gain_se=p.gain_se, t_crit=p.t_crit,
                       window=p.window, fit_start=p.fit_start)
        assert bare.stop_step() == p.step and np.isnan(bare.value(np.array([1000.0]))).all()
        plot_log(tmp_path / "log.jsonl", tmp_path / "loss.png", bare)
        assert (tmp_path / "loss.png").stat().st_size > 10_000
