"""Training the swap model from two facesets, with everything needed to know when it is done.

- Facesets are loaded once and kept on the training device as uint8; augmentation runs
  there in batches with kornia: small rotation/scale/shift, flip and colour jitter on the
  whole 256 px crop, then the classic random warp of the model's input only (the target
  is not warped), so the decoder learns to rebuild a face, not to copy pixels.
- The training loss is logged every step; a validation score every ``val_every`` steps
  on a fixed held-out set of faces from each faceset (never trained on, the same faces
  each time, evaluated in fixed chunks so the batch size cannot move it).
- When to stop is read from recent validations only (the first minutes' fast drop would pull
  any one curve through the whole run): the slope of the last octave of steps in log-step,
  with its standard error, says how much training half as long again should still gain, and
  ``--until plateau`` stops once even the top of that interval is under 1% of the score (not
  before step 3000: the mean-face stage looks flat too); a power law or an exponential on the
  last three octaves estimates the plateau, with a band wide enough for both.
- Checkpoints (weights, optimizer, schedule, RNG, log position) are written atomically
  every ``checkpoint_every`` steps and at exit; ``resume`` continues the same run after a
  kill -9, and the log is cut back to the checkpoint so it has no gap or repeat.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from swapgraph.runtime.errors import SwapgraphError, UsageError
from swapgraph.runtime.devices import model_autocast, resolve_device
from swapgraph.runtime.files import atomic_path
from swapgraph.runtime.images import write_png
from swapgraph.runtime.ports import BUCKETS

from .align import model_input
from .faceset import INFO_FILE as FACESET_INFO
from .faceset import read_faceset
from .swap_model import PRESETS, ModelInfo, SwapModel, save_model

LOG_FILE = "log.jsonl"
CHECKPOINT_DIR = "checkpoint"
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]


# --- schedules and the plateau ---------------------------------------------------------

def parse_batch_schedule(text: str) -> list[tuple[int, int]]:
    """``"0:8,2000:16,5000:64"`` -> [(0, 8), (2000, 16), (5000, 64)]: batch size from each step on."""
    pairs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", part)
        if not m or int(m.group(2)) < 1:
            raise UsageError(f"--batch-schedule {text!r}: expected STEP:BATCH pairs such as 0:8,2000:16")
        pairs.append((int(m.group(1)), int(m.group(2))))
    pairs.sort()
    if pairs[0][0] != 0:
        raise UsageError(f"--batch-schedule {text!r}: the first entry must start at step 0, e.g. 0:8")
    return pairs


def batch_at(schedule: list[tuple[int, int]], step: int) -> int:
    return [b for s, b in schedule if s <= step][-1]


# the stopping rule: stop once training half as long again is expected to improve validation by
# under 1%, even at the top of a one-sided 95% interval
STOP_HORIZON = 0.5
STOP_GAIN = 0.01
MIN_POINTS = 5
# an untrained autoencoder first learns the mean face and its validation stays flat a while
# (lite-64 on the d18/d19 pair: 0.16 from step 150 to about 950, then falling to 0.06): no
# curve test can tell that from a plateau, so --until plateau waits three times as long
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
        """What ``--until plateau`` does: flat, and past the mean-face stage (``MIN_STOP_STEP``)."""
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


@lru_cache(maxsize=4)
def _fit_history(history: tuple[tuple[int, float], ...]) -> Plateau | None:
    # done() asks every step; the estimate only changes when a validation comes in
    return fit_plateau([s for s, _ in history], [v for _, v in history])


def _per_1000_text(p: Plateau) -> str:
    gain, se = p.per_1000()
    return f"{-100 * gain / p.current:+.2f}%±{100 * se / p.current:.2f}% per 1000 steps"


def _plateau_text(p: Plateau) -> str:
    # a band down to 0 means the tail has not begun to bend: no centre is worth printing
    if p.band[0] > 0:
        return f"plateau ~{p.c:.4f} ({p.band[0]:.4f}–{p.band[1]:.4f})"
    return f"plateau not in sight (below {p.band[1]:.4f})"


def describe_plateau(p: Plateau) -> str:
    """One line: the state, the trend per 1000 steps, the plateau band and the expected stop."""
    state = "flat" if p.flat else "still falling" if p.still_falling else "flattening"
    text = f"{state}, {_per_1000_text(p)}"
    if p.c is not None:
        text += f", {_plateau_text(p)}"
    stop = p.stop_step()
    return text + (", --until plateau stops here" if p.stops else
                   f", --until plateau waits for step {MIN_STOP_STEP}" if p.flat else
                   f", stop expected ~step {stop}" if stop is not None else ", no stop in sight")


# --- data ----------------------------------------------------------------------------

@dataclass
class FaceData:
    """One faceset on the training device: crops (N, 3, S, S) uint8, face masks (N, 1, S, S)
    uint8 (the oval) and feature masks (N, 1, S, S) uint8 (eyes, brows and lips, grown a little)."""

    name: str
    crops: torch.Tensor
    masks: torch.Tensor
    features: torch.Tensor
    coverage: int
    train: torch.Tensor  # indices
    val: torch.Tensor


def _hull_mask(landmarks: np.ndarray, frame_from_crop: np.ndarray, size: int) -> np.ndarray:
    """The face oval as a filled mask in crop pixels (uint8 0/255)."""
    m = np.vstack([np.asarray(frame_from_crop), [0, 0, 1]])
    crop_from_frame = np.linalg.inv(m)[:2]
    pts = np.asarray(landmarks)[FACE_OVAL, :2]
    in_crop = pts @ crop_from_frame[:, :2].T + crop_from_frame[:, 2]
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, np.round(in_crop).astype(np.int32), 255)
    return mask


def _feature_mask(landmarks: np.ndarray, frame_from_crop: np.ndarray, size: int) -> np.ndarray:
    """Eyes, brows and lips as a filled mask in crop pixels (uint8 0/255), grown by 3 px:
    where a viewer looks first, so the loss weighs them more (``feature_weight``)."""
    from .color import EXCLUDED
    from .mask import polygon_masks, regions

    m = np.vstack([np.asarray(frame_from_crop), [0, 0, 1]])
    crop_from_frame = np.linalg.inv(m)[:2]
    pts = np.asarray(landmarks)[:, :2] @ crop_from_frame[:, :2].T + crop_from_frame[:, 2]
    mask = polygon_masks(pts[None], [regions()[n] for n in EXCLUDED], size)[0]
    return cv2.dilate(mask, np.ones((7, 7), np.uint8)) * 255


def load_faceset(folder: Path, device: torch.device, bucket: str | None, val_faces: int, seed: int) -> FaceData:
    """Read a faceset once; hold out ``val_faces`` faces chosen by ``seed`` for validation."""
    folder = Path(folder)
    records = [r for r in read_faceset(folder) if bucket is None or r["bucket"] == bucket]
    if bucket is not None and bucket not in BUCKETS:
        raise UsageError(f"--bucket {bucket}: unknown; choose from {', '.join(BUCKETS)}")
    if len(records) < val_faces + 8:
        raise UsageError(f"{folder}: {len(records)} faces{f' in bucket {bucket}' if bucket else ''}; training needs "
                         f"at least {val_faces + 8} ({val_faces} are held out for validation); extract more")
    info = json.loads((folder / FACESET_INFO).read_text()) if (folder / FACESET_INFO).is_file() else {}
    crops, masks, features = [], [], []
    for r in records:
        img = cv2.imread(str(folder / r["file"]))
        if img is None:
            raise UsageError(f"{folder / r['file']}: missing or unreadable crop; extract the faceset again")
        crops.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        masks.append(_hull_mask(r["landmarks"], r["frame_from_crop"], img.shape[0]))
        features.append(_feature_mask(r["landmarks"], r["frame_from_crop"], img.shape[0]))
    crops_t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().to(device)
    masks_t = torch.from_numpy(np.stack(masks))[:, None].to(device)
    features_t = torch.from_numpy(np.stack(features))[:, None].to(device)
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return FaceData(folder.name, crops_t, masks_t, features_t, int(info.get("coverage", 160)), order[val_faces:].to(device),
                    order[:val_faces].to(device))


def random_warp(images: torch.Tensor, generator: torch.Generator, strength: float = 0.05, points: int = 5) -> torch.Tensor:
    """The classic random warp: a coarse grid of control points moved at random, smoothed.

    images: (B, C, S, S) in [0, 1]. Each control point moves by a normal offset of
    ``strength`` of the image side; the offsets are upsampled to a smooth flow.
    """
    b = images.shape[0]
    noise = torch.randn(b, 2, points, points, generator=generator, device=generator.device) * (2 * strength)
    noise[:, :, [0, -1], :] = 0  # the edges stay put
    noise[:, :, :, [0, -1]] = 0
    flow = F.interpolate(noise.to(images.device), size=images.shape[-2:], mode="bicubic", align_corners=True)
    theta = torch.eye(2, 3, device=images.device, dtype=images.dtype)[None].expand(b, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def augment(crops: torch.Tensor, masks: torch.Tensor | None, coverage: int, size: int,
            generator: torch.Generator, warp: float = 0.05, features: torch.Tensor | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(input, target, target mask or None, target feature mask or None) for a batch of
    uint8 crops (N, 3, S, S), on the crops' device; masks and features (N, 1, S, S) uint8.

    Rotation ±10°, scale ±5%, shift ±5%, horizontal flip and colour jitter apply to input
    and target (and the masks) alike; the random warp (``warp``: control-point offsets as a
    share of the side) to the input only. ``coverage`` is the central square the model sees.
    """
    b, _, s, _ = crops.shape
    extra = [m.float() / 255 for m in (masks, features) if m is not None]
    x = torch.cat([crops.float() / 255, *extra], 1)
    g = generator

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=g, device=g.device).to(x.device) * (hi - lo) + lo

    angle, scale = uniform(-10, 10), uniform(0.95, 1.05)
    shift = torch.stack([uniform(-0.05, 0.05), uniform(-0.05, 0.05)], 1) * s
    centre = torch.full((b, 2), (s - 1) / 2, device=x.device)
    m = kornia.geometry.transform.get_rotation_matrix2d(centre, angle, torch.stack([scale, scale], 1))
    m[:, :, 2] += shift
    x = kornia.geometry.transform.warp_affine(x, m, (s, s), padding_mode="border", align_corners=True)
    flip = uniform(0, 1) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    rgb = x[:, :3]
    brightness = uniform(-0.05, 0.05)[:, None, None, None]
    contrast = uniform(0.9, 1.1)[:, None, None, None]
    mean = rgb.mean((1, 2, 3), keepdim=True)
    rgb = ((rgb - mean) * contrast + mean + brightness).clamp(0, 1)
    target = model_input(rgb, coverage, size)
    # the masks travel as one 3-channel image through the resize (one call, not one per mask)
    packed = x[:, 3:]
    if extra:
        packed = model_input(torch.cat([packed, packed[:, :1].expand(-1, 3 - packed.shape[1], -1, -1)], 1)
                             if packed.shape[1] < 3 else packed, coverage, size)
    extra_out = iter(packed.split(1, 1))
    mask = next(extra_out) if masks is not None else None
    feats = next(extra_out) if features is not None else None
    return (random_warp(target, g, warp) if warp > 0 else target), target, mask, feats


def plain_input(crops: torch.Tensor, coverage: int, size: int) -> torch.Tensor:
    """Model input of uint8 crops without augmentation (validation, previews)."""
    return model_input(crops.float() / 255, coverage, size)


# --- losses --------------------------------------------------------------------------

def detail_bands(images: torch.Tensor) -> torch.Tensor:
    """The finest detail of images (N, 3, H, W): the image less its Gaussian blur (sigma 1)."""
    return images - kornia.filters.gaussian_blur2d(images, (5, 5), (1.0, 1.0))


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                        features: torch.Tensor | None = None, feature_weight: float = 0.0,
                        detail_weight: float = 0.0) -> torch.Tensor:
    """Mean absolute error plus structural dissimilarity (DSSIM), per batch.

    With a learned mask channel, ``pred`` has 4 channels and the mask is trained against
    the face oval ``mask`` by binary cross-entropy. ``features`` (N, 1, H, W) in [0, 1]
    marks eyes, brows and lips: their absolute error counts ``1 + feature_weight`` times
    (the weights are normalised, so the loss keeps its scale). ``detail_weight`` adds the
    absolute error of the finest detail band, which a plain L1 lets a young model blur.
    """
    rgb = pred[:, :3]
    err = (rgb - target).abs()
    if features is not None and feature_weight > 0:
        w = 1 + feature_weight * features
        l1 = (err * w).mean() / w.mean()
    else:
        l1 = err.mean()
    loss = l1 + kornia.losses.ssim_loss(rgb, target, window_size=7)
    if detail_weight > 0:
        loss = loss + detail_weight * (detail_bands(rgb) - detail_bands(target)).abs().mean()
    if pred.shape[1] == 4 and mask is not None:
        loss = loss + F.binary_cross_entropy(pred[:, 3:].clamp(1e-4, 1 - 1e-4), mask)
    return loss


# --- the trainer ---------------------------------------------------------------------

@dataclass
class TrainConfig:
    a: Path
    b: Path
    out: Path
    preset: str = "lite-64"
    bucket: str | None = None
    batch_schedule: list[tuple[int, int]] = field(default_factory=lambda: [(0, 16)])
    steps: int | None = None
    minutes: float | None = None
    until_plateau: bool = False
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    lr: float = 1e-4
    mask: bool = False
    render: int | None = 224  # central pixels of the crop the model renders; None: the faceset's coverage
    feature_weight: float = 3.0
    detail_weight: float = 0.0
    warp: float = 0.05
    compile: bool = False
    val_faces: int = 16
    val_every: int = 50
    preview_every: int = 200
    checkpoint_every: int = 100
    quiet: bool = False


class TrainingError(SwapgraphError, RuntimeError):
    exit_code = 1


class Trainer:
    """One training run of a :class:`SwapModel` on two facesets; see the module docstring."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        if cfg.preset not in PRESETS:
            raise UsageError(f"--preset {cfg.preset}: unknown; choose one of {', '.join(PRESETS)}")
        if cfg.steps is None and cfg.minutes is None and not cfg.until_plateau:
            raise UsageError("say when to stop: --steps N, --minutes M or --until plateau")
        self.cfg = cfg
        self.say = log
        self.device = resolve_device(cfg.device, None, ("cpu", "cuda"))
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.size = PRESETS[cfg.preset].size
        self.data = {"a": load_faceset(cfg.a, self.device, cfg.bucket, cfg.val_faces, cfg.seed),
                     "b": load_faceset(cfg.b, self.device, cfg.bucket, cfg.val_faces, cfg.seed + 1)}
        a, b = self.data["a"], self.data["b"]
        if a.coverage != b.coverage or a.crops.shape[-1] != b.crops.shape[-1]:
            raise UsageError(f"{cfg.a} and {cfg.b} were aligned differently (coverage {a.coverage} and {b.coverage} "
                             f"of {a.crops.shape[-1]} and {b.crops.shape[-1]} px crops); extract both with one Align")
        # the square the model renders: the faceset's coverage sets the face's scale in the crop,
        # a larger render takes in the jaw, cheeks and forehead the coverage leaves out
        self.render = cfg.render or a.coverage
        if not a.coverage <= self.render <= a.crops.shape[-1]:
            raise UsageError(f"--render {self.render}: must lie between the facesets' coverage ({a.coverage}) and "
                             f"their crop size ({a.crops.shape[-1]})")
        torch.manual_seed(cfg.seed)
        self.model = SwapModel(cfg.preset, ("a", "b"), cfg.mask).to(self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.5, 0.999), fused=cuda)
        self.forward_encoder = torch.compile(self.model.encoder) if cfg.compile else self.model.encoder
        self.autocast = model_autocast(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.sampler = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
        self.step = 0
        self.batch_halvings = 0  # CUDA out-of-memory halvings, applied on top of the schedule
        self.val_history: list[tuple[int, float]] = []
        self.started = time.time()
        self.elapsed_before = 0.0
        self.stop_requested = False
        self._log_file = None
        if cfg.resume:
            self._load_checkpoint()
        elif (self.out / LOG_FILE).exists():
            (self.out / LOG_FILE).unlink()  # a new run starts a new log
        self.preview_faces = {k: d.val[:4] for k, d in self.data.items()}

    # --- batches -----------------------------------------------------------------------
    def batch_size(self) -> int:
        return max(1, batch_at(self.cfg.batch_schedule, self.step) >> self.batch_halvings)

    def _sample(self, d: FaceData, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                                    torch.Tensor | None]:
        pick = d.train[torch.randint(len(d.train), (n,), generator=self.sampler, device=self.sampler.device)
                       .to(d.train.device)]
        return augment(d.crops[pick], d.masks[pick] if self.cfg.mask else None, self.render, self.size, self.generator,
                       self.cfg.warp, d.features[pick] if self.cfg.feature_weight > 0 else None)

    def train_step(self) -> dict[str, float]:
        """One step: N faces of each identity through the shared encoder in one pass of 2N."""
        n = self.batch_size()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        a, b = (self._sample(d, n) for d in self.data.values())
        x = torch.cat([a[0], b[0]])
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            z = self.forward_encoder(x)
            preds = [self.model.decoders["a"](z[:n]), self.model.decoders["b"](z[n:])]
        c = self.cfg
        losses = torch.stack([reconstruction_loss(p.float(), t, m if c.mask else None, f, c.feature_weight,
                                                  c.detail_weight)
                              for p, (_, t, m, f) in zip(preds, (a, b))])
        losses.sum().backward()
        self.optimizer.step()
        la, lb = losses.detach().cpu().tolist()  # the step's one wait for the device
        return {"loss": (la + lb) / 2, "loss_a": la, "loss_b": lb, "batch": n}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean reconstruction loss on the held-out faces, in fixed chunks of 8 (batch-size free)."""
        self.model.eval()
        scores = {}
        for name, d in self.data.items():
            parts = []
            for chunk in d.val.split(8):
                x = plain_input(d.crops[chunk], self.render, self.size)
                with self.autocast:
                    pred = self.model(x, name)
                mask = model_input(d.masks[chunk].float().expand(-1, 3, -1, -1) / 255, self.render,
                                   self.size)[:, :1]
                parts.append(float(reconstruction_loss(pred.float(), x, mask if self.cfg.mask else None)) * len(chunk))
            scores[f"val_{name}"] = sum(parts) / len(d.val)
        return {"val": (scores["val_a"] + scores["val_b"]) / 2, **scores}

    @torch.no_grad()
    def preview(self) -> Path:
        """A grid of fixed faces: rows A, A→A, A→B, then B, B→B, B→A."""
        self.model.eval()
        rows = []
        for name, other in (("a", "b"), ("b", "a")):
            d = self.data[name]
            x = plain_input(d.crops[self.preview_faces[name]], self.render, self.size)
            with self.autocast:
                same, swap = self.model(x, name)[:, :3].float(), self.model(x, other)[:, :3].float()
            rows += [torch.cat(list(t), -1) for t in (x, same, swap)]
        grid = torch.cat(rows, -2)
        folder = self.out / "previews"
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{self.step:07d}.png"
        write_png(path, grid.cpu())
        write_png(self.out / "preview.png", grid.cpu())
        return path

    # --- logs, plots, checkpoints -------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self._log_file is None:
            self._log_file = (self.out / LOG_FILE).open("a", encoding="utf-8")
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()  # whole lines on disk: a checkpoint records the log's length

    def plateau(self) -> Plateau | None:
        return _fit_history(tuple(self.val_history))

    def plot(self) -> None:
        plot_log(self.out / LOG_FILE, self.out / "loss.png", self.plateau())

    def summary(self) -> dict[str, Any]:
        p = self.plateau()
        s = {"steps": self.step, "seconds": round(self.elapsed(), 1), "batch": self.batch_size(),
             "val": self.val_history[-1][1] if self.val_history else None,
             "batch_schedule": self.cfg.batch_schedule, "seed": self.cfg.seed, "device": str(self.device)}
        if p is not None:
            gain, gain_se = p.per_1000()
            s.update({"estimate": describe_plateau(p), "still_falling": p.still_falling, "flat": p.flat,
                      "improvement_per_1000": round(gain, 6), "improvement_per_1000_se": round(gain_se, 6),
                      "trend": {"window": list(p.window), "gain": p.gain, "gain_high": p.gain_high,
                                "horizon": p.horizon, "current": p.current}})
            if p.c is not None:
                s.update({"plateau": round(p.c, 6), "plateau_band": [round(x, 6) for x in p.band],
                          "fit": {"model": "c + a*(t/step)^-b", "c": p.c, "a": p.a, "b": p.b, "step": p.step,
                                  "from_step": p.fit_start}})
                s["plateau_step"] = p.stop_step()  # None: not within 100 times the steps so far
        return s

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def model_info(self) -> ModelInfo:
        d = self.data["a"]
        return ModelInfo(preset=self.cfg.preset, size=self.size, crop=int(d.crops.shape[-1]), coverage=d.coverage,
                         render=None if self.render == d.coverage else self.render,
                         names={"a": str(self.cfg.a), "b": str(self.cfg.b)}, bucket=self.cfg.bucket,
                         mask=self.cfg.mask, training=self.summary(),
                         recipe={"lr": self.cfg.lr, "feature_weight": self.cfg.feature_weight,
                                 "detail_weight": self.cfg.detail_weight, "warp": self.cfg.warp})

    def save(self) -> None:
        """Model and checkpoint, each file written under a temporary name then renamed."""
        save_model(self.out, self.model, self.model_info())
        ck = self.out / CHECKPOINT_DIR
        ck.mkdir(exist_ok=True)
        tensors = {f"model.{k}": v.detach().contiguous().cpu()
                   for k, v in getattr(self.model, "_orig_mod", self.model).state_dict().items()}
        opt = self.optimizer.state_dict()
        for pid, st in opt["state"].items():
            for key, value in st.items():
                tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
        tensors["rng.cpu"] = torch.get_rng_state()
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.sampler"] = self.sampler.get_state()
        log = self.out / LOG_FILE
        meta = {"step": self.step, "batch_halvings": self.batch_halvings, "val_history": self.val_history,
                "elapsed": self.elapsed(), "log_bytes": log.stat().st_size if log.exists() else 0,
                "param_groups": opt["param_groups"], "config": {"preset": self.cfg.preset, "mask": self.cfg.mask,
                                                                 "seed": self.cfg.seed, "render": self.render}}
        # one file, the step and log position in its header: a kill leaves the old checkpoint or the new one
        with atomic_path(ck / "checkpoint.safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"swapgraph_checkpoint": json.dumps(meta)})

    def _load_checkpoint(self) -> None:
        ck = self.out / CHECKPOINT_DIR
        tensor_path = ck / "checkpoint.safetensors"
        if not tensor_path.is_file():
            raise UsageError(f"--resume: no checkpoint in {ck}; start without --resume")
        with safe_open(str(tensor_path), "pt") as f:
            meta = json.loads(f.metadata()["swapgraph_checkpoint"])
        if meta["config"]["preset"] != self.cfg.preset or meta["config"]["mask"] != self.cfg.mask:
            raise UsageError(f"--resume: the checkpoint in {ck} is a {meta['config']['preset']} model"
                             f"{' with a mask' if meta['config']['mask'] else ''}; resume with the same --preset/--mask")
        if meta["config"].get("render", self.render) != self.render:
            raise UsageError(f"--resume: the checkpoint in {ck} renders {meta['config']['render']} px; resume with "
                             f"--render {meta['config']['render']}")
        tensors = load_file(str(tensor_path), device="cpu")
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v.to(self.device) if key != "step" else v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.cpu"])
        self.generator.set_state(tensors["rng.generator"])
        self.sampler.set_state(tensors["rng.sampler"])
        self.step = meta["step"]
        self.batch_halvings = meta["batch_halvings"]
        self.val_history = [tuple(x) for x in meta["val_history"]]
        self.elapsed_before = meta["elapsed"]
        log = self.out / LOG_FILE
        if log.exists():  # drop what was logged after the checkpoint: those steps run again
            with log.open("r+b") as f:
                f.truncate(meta["log_bytes"])
        self.say(f"resumed at step {self.step}")

    # --- the loop ---------------------------------------------------------------------
    def done(self) -> bool:
        c = self.cfg
        if self.stop_requested:
            return True
        if c.steps is not None and self.step >= c.steps:
            return True
        if c.minutes is not None and self.elapsed() >= c.minutes * 60:
            return True
        if c.until_plateau:
            p = self.plateau()
            return p is not None and len(self.val_history) >= 8 and p.stops
        return False

    def run(self) -> dict[str, Any]:
        c = self.cfg
        old_term = signal.signal(signal.SIGTERM, self._request_stop) if _main_thread() else None
        window: list[tuple[float, int]] = []
        try:
            if self.step == 0:
                self._validate_and_log()
            while not self.done():
                t0 = time.perf_counter()
                try:
                    rec = self.train_step()
                except torch.cuda.OutOfMemoryError:
                    if self.batch_size() == 1:
                        raise TrainingError("CUDA out of memory at batch size 1; use a smaller --preset") from None
                    self.batch_halvings += 1
                    torch.cuda.empty_cache()
                    self.say(f"CUDA out of memory: batch halved to {self.batch_size()} and training goes on")
                    continue
                self.step += 1
                dt = time.perf_counter() - t0
                window = (window + [(dt, 2 * rec["batch"])])[-20:]
                ips = sum(n for _, n in window) / sum(t for t, _ in window)
                self._log({"step": self.step, **{k: round(v, 6) if isinstance(v, float) else v for k, v in rec.items()},
                           "images_per_s": round(ips, 1), "time": round(self.elapsed(), 2)})
                if self.step % c.val_every == 0:
                    self._validate_and_log()
                if self.step % c.preview_every == 0:
                    self.preview()
                if self.step % c.checkpoint_every == 0:
                    self.save()
                    self.plot()
                if not c.quiet and (self.step % 10 == 0 or self.step == 1):
                    self.say(self.progress_line(rec, ips))
        except KeyboardInterrupt:
            self.say("interrupted: saving a checkpoint")
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
        if not self.val_history or self.val_history[-1][0] != self.step:
            self._validate_and_log()
        self.preview()
        self.save()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.plot()
        return self.summary()

    def _request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    def _validate_and_log(self) -> None:
        v = self.validate()
        self.val_history.append((self.step, v["val"]))
        self._log({"step": self.step, **{k: round(x, 6) for k, x in v.items()}, "time": round(self.elapsed(), 2)})

    def progress_line(self, rec: dict[str, Any], ips: float) -> str:
        p = self.plateau()
        val = f"val {self.val_history[-1][1]:.4f}" if self.val_history else "val -"
        est = f"when to stop: after {MIN_POINTS} validations" if p is None else describe_plateau(p)
        return (f"step {self.step}  batch {rec['batch']}x2  {ips:.0f} img/s  loss {rec['loss']:.4f} "
                f"(a {rec['loss_a']:.4f}, b {rec['loss_b']:.4f})  {val}  {est}")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def plot_log(log: Path, out: Path, plateau: Plateau | None = None) -> None:
    """``loss.png``: the whole run (training loss, its running mean, validation) and, beside it,
    when to stop: the recent validations in log-step with the trend window and line, the
    plateau fit and its band, and where ``--until plateau`` stops or is expected to."""
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
        ax.axhspan(*plateau.band, color="#888", alpha=0.2, lw=0, label=f"{_plateau_text(plateau)}, 90% band")
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
    ax.plot(t, p.trend(t), "-", color="#28a", lw=1.2, label=f"trend of the shaded window: {_per_1000_text(p)}")
    ax.errorbar([p.step + p.horizon], [p.current - p.gain], yerr=[[p.t_crit * p.gain_se], [p.t_crit * p.gain_se]],
                color="#28a", capsize=3, label=f"gain over the next {p.horizon} steps, 90% interval "
                                               f"(stop under {STOP_GAIN * p.current:.4f})")
    if p.c is not None:
        t = np.geomspace(p.fit_start, end, 100)
        shape = f"c + a·t^-{p.b:.2f}" if p.model == "power" else f"c + a·exp(-t/{p.b:.0f})"
        ax.plot(t, p.value(t), "--", color="#c40", lw=0.9, label=f"fit {shape} from step {p.fit_start}")
        ax.axhspan(*p.band, color="#888", alpha=0.2, lw=0, label=f"{_plateau_text(p)}, 90% band")
    if p.stops:
        ax.axvline(p.step, color="#080", lw=1, label=f"flat: --until plateau stops at step {p.step}")
    elif p.flat:
        ax.axvline(stop, color="#080", lw=1, ls="-.", label=f"flat, but --until plateau waits for step {stop}")
    elif stop is not None:
        ax.axvline(stop, color="#888", lw=1, ls="-.", label=f"expected stop ~step {stop}")
    else:
        ax.plot([], [], " ", label="no stop expected within 100x the steps so far")
    # the band may reach 0: frame the scores, the plateau and the interval, not all of the band
    low = min([v for _, v in shown] + [p.current - p.gain_high] + ([p.c] if p.c is not None else []))
    high = max(v for _, v in shown)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.legend(fontsize=7)


__all__ = ["Plateau", "TrainConfig", "Trainer", "augment", "batch_at", "describe_plateau", "fit_plateau",
           "parse_batch_schedule", "random_warp"]
