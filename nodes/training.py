"""Training the swap model from two facesets, with everything needed to know when it is done.

- Facesets are loaded once and kept on the training device as uint8; augmentation runs
  there in batches with kornia: small rotation/scale/shift, flip and colour jitter on the
  whole 256 px crop, then the classic random warp of the model's input only (the target
  is not warped), so the decoder learns to rebuild a face, not to copy pixels.
- The training loss is logged every step; a validation score every ``val_every`` steps
  on a fixed held-out set of faces from each faceset (never trained on, the same faces
  each time, evaluated in fixed chunks so the batch size cannot move it).
- ``c + a·exp(-t/τ)`` is fitted to the validation curve: the estimated plateau and the
  step where the score comes within 1% of it (``--until plateau`` stops there).
- Checkpoints (weights, optimizer, schedule, RNG, log position) are written atomically
  every ``checkpoint_every`` steps and at exit; ``resume`` continues the same run after a
  kill -9, and the log is cut back to the checkpoint so it has no gap or repeat.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from swapgraph.runtime.errors import SwapgraphError, UsageError
from swapgraph.runtime.executor import resolve_device
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


@dataclass(frozen=True)
class Plateau:
    """A fit of ``c + a·exp(-t/τ)`` to a validation curve."""

    c: float
    a: float
    tau: float

    def value(self, t: float) -> float:
        return self.c + self.a * math.exp(-t / self.tau)

    def step_within(self, fraction: float = 0.01) -> float:
        """First step where the curve is within ``fraction`` of its plateau."""
        if self.a <= 0 or self.c <= 0:
            return 0.0
        return max(0.0, self.tau * math.log(self.a / (fraction * self.c)))


def fit_plateau(steps: list[float], values: list[float]) -> Plateau | None:
    """Least-squares fit of ``c + a·exp(-t/τ)``; None with fewer than 5 points or no decay."""
    if len(steps) < 5:
        return None
    from scipy.optimize import curve_fit

    t = np.asarray(steps, np.float64)
    y = np.asarray(values, np.float64)
    span = max(t[-1] - t[0], 1.0)

    def f(x, c, a, tau):
        return c + a * np.exp(-(x - t[0]) / tau)

    best = None
    for tau0 in (span / 10, span / 3, span):  # a few starts: the fit is not convex in τ
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
    # re-express with t measured from step 0
    return Plateau(float(c), float(a * math.exp(t[0] / tau)), float(tau))


# --- data ----------------------------------------------------------------------------

@dataclass
class FaceData:
    """One faceset on the training device: crops (N, 3, S, S) uint8 and face masks (N, 1, S, S)."""

    name: str
    crops: torch.Tensor
    masks: torch.Tensor
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
    crops, masks = [], []
    for r in records:
        img = cv2.imread(str(folder / r["file"]))
        if img is None:
            raise UsageError(f"{folder / r['file']}: missing or unreadable crop; extract the faceset again")
        crops.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        masks.append(_hull_mask(r["landmarks"], r["frame_from_crop"], img.shape[0]))
    crops_t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().to(device)
    masks_t = torch.from_numpy(np.stack(masks))[:, None].to(device)
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed))
    return FaceData(folder.name, crops_t, masks_t, int(info.get("coverage", 160)), order[val_faces:].to(device),
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
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(input, target, target mask or None) for a batch of uint8 crops, on the crops' device.

    Rotation ±10°, scale ±5%, shift ±5%, horizontal flip and colour jitter apply to input
    and target (and mask) alike; the random warp to the input only.
    """
    b, _, s, _ = crops.shape
    x = crops.float() / 255 if masks is None else torch.cat([crops.float() / 255, masks.float() / 255], 1)
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
    mask = None if masks is None else model_input(x[:, 3:].expand(-1, 3, -1, -1), coverage, size)[:, :1]
    return random_warp(target, g), target, mask


def plain_input(crops: torch.Tensor, coverage: int, size: int) -> torch.Tensor:
    """Model input of uint8 crops without augmentation (validation, previews)."""
    return model_input(crops.float() / 255, coverage, size)


# --- losses --------------------------------------------------------------------------

def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error plus structural dissimilarity (DSSIM), per batch.

    With a learned mask channel, ``pred`` has 4 channels and the mask is trained against
    the face oval ``mask`` by binary cross-entropy.
    """
    rgb = pred[:, :3]
    loss = (rgb - target).abs().mean() + kornia.losses.ssim_loss(rgb, target, window_size=7)
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
        torch.manual_seed(cfg.seed)
        self.model = SwapModel(cfg.preset, ("a", "b"), cfg.mask).to(self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.5, 0.999), fused=cuda)
        self.forward_encoder = torch.compile(self.model.encoder) if cfg.compile else self.model.encoder
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
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

    def _sample(self, d: FaceData, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        pick = d.train[torch.randint(len(d.train), (n,), generator=self.sampler, device=self.sampler.device)
                       .to(d.train.device)]
        return augment(d.crops[pick], d.masks[pick] if self.cfg.mask else None, d.coverage, self.size, self.generator)

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
        losses = torch.stack([reconstruction_loss(p.float(), t, m if self.cfg.mask else None)
                              for p, (_, t, m) in zip(preds, (a, b))])
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
                x = plain_input(d.crops[chunk], d.coverage, self.size)
                with self.autocast:
                    pred = self.model(x, name)
                mask = model_input(d.masks[chunk].float().expand(-1, 3, -1, -1) / 255, d.coverage, self.size)[:, :1]
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
            x = plain_input(d.crops[self.preview_faces[name]], d.coverage, self.size)
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
        return fit_plateau([s for s, _ in self.val_history], [v for _, v in self.val_history])

    def plot(self) -> None:
        plot_log(self.out / LOG_FILE, self.out / "loss.png", self.plateau())

    def summary(self) -> dict[str, Any]:
        p = self.plateau()
        s = {"steps": self.step, "seconds": round(self.elapsed(), 1), "batch": self.batch_size(),
             "val": self.val_history[-1][1] if self.val_history else None,
             "batch_schedule": self.cfg.batch_schedule, "seed": self.cfg.seed, "device": str(self.device)}
        if p is not None:
            s.update({"plateau": round(p.c, 6), "plateau_step": int(p.step_within(0.01)),
                      "fit": {"c": p.c, "a": p.a, "tau": p.tau}})
        return s

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def model_info(self) -> ModelInfo:
        d = self.data["a"]
        return ModelInfo(preset=self.cfg.preset, size=self.size, crop=int(d.crops.shape[-1]), coverage=d.coverage,
                         names={"a": str(self.cfg.a), "b": str(self.cfg.b)}, bucket=self.cfg.bucket,
                         mask=self.cfg.mask, training=self.summary())

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
                                                                 "seed": self.cfg.seed}}
        # one file, the step and log position in its header: a kill leaves the old checkpoint or the new one
        tmp = ck / ".checkpoint.safetensors.partial"
        save_file(tensors, str(tmp), metadata={"swapgraph_checkpoint": json.dumps(meta)})
        os.replace(tmp, ck / "checkpoint.safetensors")

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
            return p is not None and len(self.val_history) >= 8 and self.step >= p.step_within(0.01)
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
        est = (f"plateau ~{p.c:.4f}, within 1% at step ~{int(p.step_within(0.01))}" if p is not None
               else "plateau: after 5 validations")
        return (f"step {self.step}  batch {rec['batch']}x2  {ips:.0f} img/s  loss {rec['loss']:.4f} "
                f"(a {rec['loss_a']:.4f}, b {rec['loss_b']:.4f})  {val}  {est}")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def plot_log(log: Path, out: Path, plateau: Plateau | None = None) -> None:
    """``loss.png``: the training loss (and its running mean) and the validation score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in log.read_text().splitlines():
        r = json.loads(line)
        (val if "val" in r else train).append(r)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
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
    if plateau is not None and val:
        t = np.linspace(0, max(val[-1]["step"], plateau.step_within(0.01)) * 1.1, 200)
        ax.plot(t, [plateau.value(x) for x in t], "--", color="#c40", lw=0.8, label="fit c + a·exp(-t/τ)")
        ax.axhline(plateau.c, color="#888", lw=0.8, ls=":", label=f"plateau {plateau.c:.4f}")
        ax.axvline(plateau.step_within(0.01), color="#888", lw=0.8, ls="-.",
                   label=f"within 1%: step {int(plateau.step_within(0.01))}")
    ax.set_xlabel("step")
    ax.set_ylabel("L1 + DSSIM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)


__all__ = ["Plateau", "TrainConfig", "Trainer", "augment", "batch_at", "fit_plateau", "parse_batch_schedule",
           "random_warp"]
