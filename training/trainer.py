"""Training the swap model from two facesets, with everything needed to know when it is done.

- Facesets are loaded once and kept on the training device as uint8 (:mod:`.data`);
  augmentation runs there in batches (:mod:`.augment`).
- The training loss is logged every step; a validation score every ``val_every`` steps
  on a fixed held-out set of faces from each faceset (never trained on, the same faces
  each time, evaluated in fixed chunks so the batch size cannot move it).
- When to stop is read from recent validations only (:mod:`.plateau`); ``until_plateau``
  stops once training half as long again should gain under 1%.
- Checkpoints (:mod:`.checkpoints`) are written atomically every ``checkpoint_every`` steps
  and at exit; ``resume`` continues the same run after a kill -9, and the log is cut back to
  the checkpoint so it has no gap or repeat.
- Every setting and input is checked before anything is written: a refused run leaves no
  model folder behind.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from swapgraph.nodes.align import model_input
from swapgraph.nodes.swap_model import PRESETS, ModelInfo, SwapModel, save_model
from swapgraph.runtime.devices import model_autocast, resolve_device
from swapgraph.runtime.errors import SwapgraphError, UsageError
from swapgraph.runtime.images import write_png

from .augment import augment, plain_input
from .checkpoints import load_checkpoint, read_checkpoint_meta, save_checkpoint
from .config import LOG_FILE, TrainConfig, batch_at
from .data import FaceData, load_faceset
from .losses import reconstruction_loss
from .plateau import MIN_POINTS, Plateau, describe_plateau, fit_plateau
from .plots import plot_log


class TrainingError(SwapgraphError, RuntimeError):
    """Training failed while running (not a refused setting: those are UsageError)."""

    exit_code = 1


class Trainer:
    """One training run of a :class:`SwapModel` on two facesets; see the module docstring."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        if cfg.preset not in PRESETS:
            raise UsageError(f"preset {cfg.preset!r}: unknown; choose one of {', '.join(PRESETS)}")
        if cfg.steps is None and cfg.minutes is None and not cfg.until_plateau:
            raise UsageError("say when to stop: steps, minutes or until_plateau")
        self.cfg = cfg
        self.say = log
        self.out = Path(cfg.out)
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"{self.out}: a file, not a model folder; train into a folder")
        saved = read_checkpoint_meta(self.out)["config"] if cfg.resume else None  # the settings it must match
        if saved is not None and (saved["preset"], saved["mask"]) != (cfg.preset, cfg.mask):
            raise UsageError(f"{self.out}: its checkpoint is a {saved['preset']} model"
                             f"{' with a mask' if saved['mask'] else ''}; resume with the same preset and mask")
        self.device = resolve_device(cfg.device, None, ("cpu", "cuda"))
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
            raise UsageError(f"render {self.render}: must lie between the facesets' coverage ({a.coverage}) and "
                             f"their crop size ({a.crops.shape[-1]})")
        if saved is not None and saved.get("render", self.render) != self.render:
            raise UsageError(f"{self.out}: its checkpoint renders {saved['render']} px; resume with render "
                             f"{saved['render']}")
        # every check is behind us: only now may the run write into its folder
        self.out.mkdir(parents=True, exist_ok=True)
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
            self._resume()
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
        log = self.out / LOG_FILE
        save_checkpoint(self.out, self.model, self.optimizer, self._generators(),
                        {"step": self.step, "batch_halvings": self.batch_halvings, "val_history": self.val_history,
                         "elapsed": self.elapsed(), "log_bytes": log.stat().st_size if log.exists() else 0,
                         "config": {"preset": self.cfg.preset, "mask": self.cfg.mask, "seed": self.cfg.seed,
                                    "render": self.render}})

    def _generators(self) -> dict[str, torch.Generator]:
        return {"generator": self.generator, "sampler": self.sampler}

    def _resume(self) -> None:
        meta = load_checkpoint(self.out, self.model, self.optimizer, self._generators(), self.device)
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
                        raise TrainingError("CUDA out of memory at batch size 1; use a smaller preset") from None
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
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=4)
def _fit_history(history: tuple[tuple[int, float], ...]) -> Plateau | None:
    # done() asks every step; the estimate only changes when a validation comes in
    return fit_plateau([s for s, _ in history], [v for _, v in history])
