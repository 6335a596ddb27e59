"""Training the swap model from two facesets, with everything needed to know when it is done;
and pretraining a base on the faces of many people, the same way.

- A run trains one decoder per identity: ``a`` and ``b`` for a pair (:class:`TrainConfig`), the
  one ``base`` for a base (:class:`PretrainConfig`), whose facesets are pooled. A pair may start
  from a base (``init``, :mod:`.pretrained`).
- Facesets are loaded once and kept on the training device as uint8 (:mod:`.data`);
  augmentation runs there in batches (:mod:`.augment`).
- The training loss is logged every step; a validation score every ``val_every`` steps
  on a fixed held-out set of faces from each faceset (never trained on, the same faces
  each time, evaluated in fixed chunks so the batch size cannot move it).
- When to stop is read from recent validations only (:mod:`.plateau`); ``until_plateau``
  stops once training half as long again should gain under 1%.
- Checkpoints (:mod:`.checkpoints`) are written atomically every ``checkpoint_every`` steps
  and at exit; ``resume`` continues the same run after a kill -9, and the log is cut back to
  the checkpoint so it has no gap or repeat. A resume must be given the facesets (by content),
  preset, mask, render, bucket and seed the checkpoint was trained with; it keeps the base
  the run started from.
- The model folder is the trainer's alone (:mod:`.folder`): files it did not write there are
  never replaced, a model there is continued (``resume``) or replaced (``force``) only when
  asked, and one run at a time holds it.
- Every setting and input is checked before anything is written: a refused run leaves no
  model folder behind.
- Ctrl-C and SIGTERM stop at the end of the step under way, save, and raise
  :class:`TrainingCancelled` (see :meth:`Trainer.run`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from swapgraph.nodes.align import model_input
from swapgraph.nodes.swap_model import INFO_FILE, MODEL_FILE, PRESETS, ModelInfo, SwapModel, icnr_, save_model
from swapgraph.runtime.devices import CoreMeter, model_autocast, resolve_device, usable_cores
from swapgraph.runtime.errors import Cancelled, SwapgraphError, UsageError
from swapgraph.runtime.files import OutputLocks
from swapgraph.runtime.images import write_png
from swapgraph.runtime.interrupts import held

from .augment import augment, plain_input
from .checkpoints import CHECKPOINT_DIR, load_checkpoint, read_checkpoint_meta, save_checkpoint
from .config import (BASE, LOG_FILE, LR_DECAYS, InitError, NamesSettings, PretrainConfig, RecipeError, ResumeError,
                     TrainConfig, batch_at, lr_factor)
from .data import FaceData, load_faceset, load_pool
from .folder import PLOT_FILE, PREVIEW_FILE, PREVIEWS_DIR, ModelFolder, check_model_folder, check_not_busy
from .losses import reconstruction_loss
from .plateau import MIN_POINTS, Plateau, describe_plateau, fit_plateau
from .plots import plot_log
from .pretrained import Base, check_fits, read_base, start_from

#: seconds between two looks at how many cores the run can get
THREADS_EVERY = 10.0


class TrainingError(SwapgraphError, RuntimeError):
    """Training failed while running (not a refused setting: those are UsageError)."""

    exit_code = 1


class TrainingCancelled(NamesSettings, Cancelled):
    """Ctrl-C or SIGTERM stopped the run; the message says at which step and what was saved."""


class Trainer:
    """One training run of a :class:`SwapModel`: a pair or a base; see the module docstring."""

    def __init__(self, cfg: TrainConfig | PretrainConfig, log: Callable[[str], None] = print) -> None:
        if cfg.preset not in PRESETS:
            raise UsageError(f"preset {cfg.preset!r}: unknown; choose one of {', '.join(PRESETS)}")
        if cfg.steps is None and cfg.minutes is None and not cfg.until_plateau:
            raise UsageError("say when to stop: steps, minutes or until_plateau")
        if cfg.resume and cfg.force:
            raise ResumeError.spelled(lambda s: f"{s('resume', True)} and {s('force', True)}: give one (resume "
                                                "continues the run in the folder, force replaces it)")
        init = Path(cfg.init) if isinstance(cfg, TrainConfig) and cfg.init is not None else None
        if init is not None and cfg.resume:
            raise InitError.spelled(lambda s: f"{s('init', init)} and {s('resume', True)}: give one (the checkpoint "
                                              "already holds the weights, and the base it started from)")
        if cfg.lr_decay not in LR_DECAYS:
            raise UsageError(f"lr_decay {cfg.lr_decay!r}: unknown; choose one of {', '.join(LR_DECAYS)}")
        if cfg.lr <= 0 or cfg.lr_warmup < 0 or not 0 <= cfg.beta1 < 1:
            raise RecipeError.spelled(lambda s: f"{s('lr', cfg.lr)}, {s('lr_warmup', cfg.lr_warmup)}, "
                                                  f"{s('beta1', cfg.beta1)}: lr must be positive, lr_warmup 0 or "
                                                  "more, beta1 in [0, 1)")
        self.cfg = cfg
        self.say = log
        self.out = Path(cfg.out)
        self.sets = cfg.identities()  # decoder -> its facesets
        self.init_path = init
        check_not_busy(self.out)
        check_model_folder(self.out, self._inputs(), resume=cfg.resume, force=cfg.force)
        saved = read_checkpoint_meta(self.out)["config"] if cfg.resume else None  # the settings it must match
        if saved is not None and (saved["preset"], saved["mask"]) != (cfg.preset, cfg.mask):
            raise UsageError(f"{self.out}: its checkpoint is a {saved['preset']} model"
                             f"{' with a mask' if saved['mask'] else ''}; resume with the same preset and mask")
        self.base: Base | None = read_base(init) if init is not None else None
        if self.base is not None:  # the checks that need no faceset, before the facesets are read
            check_fits(self.base, preset=cfg.preset, mask=cfg.mask, render=cfg.render or self.base.render,
                       crop=self.base.info.crop, coverage=self.base.info.coverage)
        self.device = resolve_device(cfg.device, None, ("cpu", "cuda"))
        self.size = PRESETS[cfg.preset].size
        pooled = isinstance(cfg, PretrainConfig)
        self.data = {name: (load_pool(sets, self.device, cfg.bucket, cfg.val_faces, cfg.seed + i) if pooled else
                            load_faceset(sets[0], self.device, cfg.bucket, cfg.val_faces, cfg.seed + i))
                     for i, (name, sets) in enumerate(self.sets.items())}
        first, a = next(iter(self.data.items()))
        for name, d in self.data.items():
            if d.coverage != a.coverage or d.crops.shape[-1] != a.crops.shape[-1]:
                raise UsageError(f"{self._given(first)} and {self._given(name)} were aligned differently (coverage "
                                 f"{a.coverage} and {d.coverage} of {a.crops.shape[-1]} and {d.crops.shape[-1]} px "
                                 "crops); extract both with one Align")
        # the square the model renders: the faceset's coverage sets the face's scale in the crop,
        # a larger render takes in the jaw, cheeks and forehead the coverage leaves out
        self.render = cfg.render or a.coverage
        if not a.coverage <= self.render <= a.crops.shape[-1]:
            raise UsageError(f"render {self.render}: must lie between the facesets' coverage ({a.coverage}) and "
                             f"their crop size ({a.crops.shape[-1]})")
        if self.base is not None:
            check_fits(self.base, preset=cfg.preset, mask=cfg.mask, render=self.render, crop=int(a.crops.shape[-1]),
                       coverage=a.coverage)
        if saved is not None and saved.get("render", self.render) != self.render:
            raise UsageError(f"{self.out}: its checkpoint renders {saved['render']} px; resume with render "
                             f"{saved['render']}")
        if saved is not None:
            self._check_resume(saved)
        # the base a resumed run started from: its checkpoint says
        self.init_record = self.base.record() if self.base is not None else saved.get("init") if saved else None
        # every check is behind us: run() takes the folder's lock, and only then writes
        self.folder = ModelFolder(self.out)
        torch.manual_seed(cfg.seed)
        self.model = SwapModel(cfg.preset, tuple(self.data), cfg.mask)
        if self.base is not None:
            start_from(self.model, self.base)
        elif cfg.icnr:
            icnr_(self.model)
        self.model = self.model.to(self.device)
        cuda = self.device.type == "cuda"
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999),
                                          fused=cuda)
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
        self.saved_step: int | None = None  # the step of the checkpoint on disk
        self.log_bytes = 0  # the log's length at that checkpoint
        self._log_file = None
        if cfg.resume:
            self._resume()
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

    def lr_factor(self) -> float:
        """The schedule's fraction of ``--lr`` at this step (warm-up, decay over the run's budget).
        A warm-up longer than a tenth of ``--steps`` is cut to that: a short run is not left
        rising for most of its steps."""
        c = self.cfg
        fractions = [self.step / c.steps] if c.steps else []
        if c.minutes:
            fractions.append(self.elapsed() / (c.minutes * 60))
        warmup = min(c.lr_warmup, max(1, c.steps // 10)) if c.steps and c.lr_warmup else c.lr_warmup
        return lr_factor(self.step, max(fractions) if fractions else None, warmup, c.lr_decay)

    def train_step(self) -> dict[str, float]:
        """One step: N faces of each identity through the shared encoder in one pass (2N for a pair)."""
        n = self.batch_size()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        batches = [self._sample(d, n) for d in self.data.values()]
        x = torch.cat([b[0] for b in batches])
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            z = self.forward_encoder(x)
            preds = [self.model.decoders[name](z[i * n:(i + 1) * n]) for i, name in enumerate(self.data)]
        c = self.cfg
        losses = torch.stack([reconstruction_loss(p.float(), t, m if c.mask else None, f, c.feature_weight,
                                                  c.detail_weight)
                              for p, (_, t, m, f) in zip(preds, batches)])
        losses.sum().backward()
        lr = self.cfg.lr * self.lr_factor()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        each = losses.detach().cpu().tolist()  # the step's one wait for the device
        return {"loss": sum(each) / len(each), **{f"loss_{name}": v for name, v in zip(self.data, each)}, "batch": n,
                "lr": lr}

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
        return {"val": sum(scores.values()) / len(scores), **scores}

    @torch.no_grad()
    def preview(self) -> Path:
        """A grid of fixed faces: for a pair rows A, A→A, A→B, then B, B→B, B→A; for a base the
        faces and their reconstructions."""
        self.model.eval()
        rows = []
        for name, d in self.data.items():
            x = plain_input(d.crops[self.preview_faces[name]], self.render, self.size)
            with self.autocast:
                decoded = [self.model(x, to)[:, :3].float() for to in (name, *(o for o in self.data if o != name))]
            rows += [torch.cat(list(t), -1) for t in (x, *decoded)]
        grid = torch.cat(rows, -2)
        self.folder.mark(PREVIEWS_DIR, PREVIEW_FILE)
        folder = self.out / PREVIEWS_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"step_{self.step:07d}.png"
        write_png(path, grid.cpu())
        write_png(self.out / PREVIEW_FILE, grid.cpu())
        return path

    # --- logs, plots, checkpoints -------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self._log_file is None:
            self.folder.mark(LOG_FILE)
            self._log_file = (self.out / LOG_FILE).open("a", encoding="utf-8")
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()  # whole lines on disk: a checkpoint records the log's length

    def plateau(self) -> Plateau | None:
        return _fit_history(tuple(self.val_history))

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def plot(self) -> None:
        self.folder.mark(PLOT_FILE)
        plot_log(self.out / LOG_FILE, self.out / PLOT_FILE, self.plateau())

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
        d = next(iter(self.data.values()))
        c = self.cfg
        kind: dict[str, Any] = {"names": {name: str(sets[0]) for name, sets in self.sets.items()}}
        if isinstance(c, PretrainConfig):
            kind = {"base": True, "facesets": self.data[BASE].identity["facesets"]}
        elif self.init_record is not None:
            kind["init"] = self.init_record
        return ModelInfo(preset=c.preset, size=self.size, crop=int(d.crops.shape[-1]), coverage=d.coverage,
                         render=None if self.render == d.coverage else self.render, identities=list(self.data),
                         bucket=c.bucket, mask=c.mask, training=self.summary(),
                         recipe={"lr": c.lr, "lr_warmup": c.lr_warmup, "lr_decay": c.lr_decay,
                                 "beta1": c.beta1, "icnr": c.icnr and self.base is None,  # a base's weights have no fresh upscalers
                                 "feature_weight": c.feature_weight, "detail_weight": c.detail_weight,
                                 "warp": c.warp}, **kind)

    def save(self) -> None:
        """Model and checkpoint, each file written under a temporary name then renamed; a signal
        that comes meanwhile waits for the renames, then stops the run after this save."""
        self.folder.mark(MODEL_FILE, INFO_FILE, CHECKPOINT_DIR)
        log = self.out / LOG_FILE
        c = self.cfg
        with held() as signals:
            save_model(self.out, self.model, self.model_info())
            save_checkpoint(self.out, self.model, self.optimizer, self._generators(),
                            {"step": self.step, "batch_halvings": self.batch_halvings, "val_history": self.val_history,
                             "elapsed": self.elapsed(), "log_bytes": log.stat().st_size if log.exists() else 0,
                             "config": {"preset": c.preset, "mask": c.mask, "seed": c.seed, "render": self.render,
                                        "bucket": c.bucket, "val_faces": c.val_faces,
                                        "facesets": {k: d.identity for k, d in self.data.items()},
                                        **({"init": self.init_record} if self.init_record is not None else {})}})
        self.saved_step = self.step
        if signals.signal is not None:
            self.stop_requested = True

    def _generators(self) -> dict[str, torch.Generator]:
        return {"generator": self.generator, "sampler": self.sampler}

    def _check_resume(self, saved: dict[str, Any]) -> None:
        """ResumeError unless this run has the facesets (by content), bucket, seed and held-out
        faces the checkpoint was trained with (preset, mask and render are checked earlier)."""
        was, now = saved.get("facesets"), {k: d.identity for k, d in self.data.items()}
        if was is not None and set(was) != set(now):
            kind = {True: "a base's (pretrain)", False: "a pair's (train)"}
            raise ResumeError.spelled(lambda s: f"{self.out}: its checkpoint is {kind[BASE in was]}, not "
                                                f"{kind[BASE in now]}; resume it with the command that started it, "
                                                f"or start a new run ({s('force', True)})")
        if was is not None and BASE in was and was[BASE]["sha256"] != now[BASE]["sha256"]:
            before = was[BASE]["facesets"]
            raise ResumeError.spelled(
                lambda s: f"{self.out}: the checkpoint was pretrained on {len(before)} faceset"
                          f"{'s' if len(before) > 1 else ''} ({', '.join(f['path'] for f in before)}; "
                          f"{was[BASE]['faces']} faces), and these are others, changed or in another order; resume "
                          f"with those facesets, unchanged and in that order, or start a new run ({s('force', True)})")
        if was is not None and BASE not in was and [was[k]["sha256"] for k in "ab"] != [now[k]["sha256"] for k in "ab"]:
            if [was[k]["sha256"] for k in "ab"] == [now[k]["sha256"] for k in "ba"]:
                why = "given the other way round, each decoder would learn the other face"
            else:
                why = "; ".join(f"{now[k]['path']} has changed since ({now[k]['faces']} faces now)"
                                if now[k]["path"] == was[k]["path"] else f"{now[k]['path']} holds other faces"
                                for k in "ab" if now[k]["sha256"] != was[k]["sha256"])
            raise ResumeError.spelled(
                lambda s: f"{self.out}: the checkpoint was trained with {s('a', was['a']['path'])} "
                          f"{s('b', was['b']['path'])} ({was['a']['faces']} and {was['b']['faces']} faces), and "
                          f"{why}; resume with those facesets, unchanged, or start a new run ({s('force', True)})")
        for key in ("bucket", "seed", "val_faces"):
            if key in saved and saved[key] != getattr(self.cfg, key):
                raise UsageError(f"{self.out}: its checkpoint was trained with {key} {saved[key]!r}, not "
                                 f"{getattr(self.cfg, key)!r}; resume with {key} {saved[key]!r}")

    def _resume(self) -> None:
        meta = load_checkpoint(self.out, self.model, self.optimizer, self._generators(), self.device)
        self.step = self.saved_step = meta["step"]
        self.batch_halvings = meta["batch_halvings"]
        self.val_history = [tuple(x) for x in meta["val_history"]]
        self.elapsed_before = meta["elapsed"]
        self.log_bytes = meta["log_bytes"]

    def _inputs(self) -> list[Path]:
        """What ``out`` may not be, hold or lie in: the facesets and the base."""
        return [*(f for sets in self.sets.values() for f in sets), *([self.init_path] if self.init_path else [])]

    def _given(self, name: str) -> str:
        """The facesets of decoder ``name`` as the run was given them."""
        return ", ".join(str(f) for f in self.sets[name])

    def _prepare_folder(self) -> None:
        """Under the folder's lock: check it again (another run may have written it since the
        checks), make it ready, and cut a resumed run's log back to its checkpoint."""
        c = self.cfg
        check_model_folder(self.out, self._inputs(), resume=c.resume, force=c.force)
        self.folder = ModelFolder(self.out)
        self.folder.prepare(resume=c.resume)
        log = self.out / LOG_FILE
        if c.resume and log.exists():  # drop what was logged after the checkpoint: those steps run again
            with log.open("r+b") as f:
                f.truncate(self.log_bytes)
        if c.resume:
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
        """Train until :meth:`done`; returns the summary. Holds ``out``'s lock for its length.

        Ctrl-C or SIGTERM stops the run at the end of the step under way (so the checkpoint
        holds whole steps), saves, and raises :class:`TrainingCancelled` (exit code 130)
        naming the step and what was written. The save publishes the model so far as well as
        the checkpoint: stopping a faceswap or DeepFaceLab run saves the model, and users
        keep the model they stopped. A run stopped before its first step saves nothing (with
        ``force``, the earlier model stays). A second signal stops at once, without that
        save: the last checkpoint stays.
        """
        with OutputLocks([self.out], what="out"), self._stop_on_signals():
            self._prepare_folder()
            try:
                self._loop()
                if not self.stop_requested:
                    if not self.val_history or self.val_history[-1][0] != self.step:
                        self._validate_and_log()
                    self.preview()
                    self.save()
                elif self.step > 0 and self.step != self.saved_step:
                    self.save()
                self._close_log()
                self.plot()
            except KeyboardInterrupt:  # a second signal
                raise self._cancelled() from None
            finally:
                self._close_log()
            if self.stop_requested:
                raise self._cancelled()
        return self.summary()

    def _loop(self) -> None:
        before = torch.get_num_threads()
        try:
            self._train_loop()
        finally:
            torch.set_num_threads(before)

    def _size_threads(self, meter: CoreMeter | None) -> None:
        """On the CPU, as many torch threads as the cores this run can get now: idle threads
        of torch spin-wait on a core another process holds, and a step then takes many
        times as long (measured: 96 images/s idle, 8 with one core busy elsewhere)."""
        if self.device.type != "cpu":
            return
        threads = meter.usable() if meter is not None else usable_cores()
        if threads != torch.get_num_threads():
            if meter is not None:
                self.say(f"{threads} torch thread{'s' if threads > 1 else ''}: {meter.allowed - threads} of "
                         f"{meter.allowed} cores busy with other work")
            torch.set_num_threads(threads)

    def _train_loop(self) -> None:
        c = self.cfg
        window: list[tuple[float, int]] = []
        self._size_threads(None)
        meter, checked = CoreMeter(), time.monotonic()
        if self.step == 0:
            self._validate_and_log()
        while not self.done():
            if time.monotonic() - checked >= THREADS_EVERY:
                self._size_threads(meter)
                checked = time.monotonic()
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
            window = (window + [(dt, len(self.data) * rec["batch"])])[-20:]
            ips = sum(n for _, n in window) / sum(t for t, _ in window)
            self._log({"step": self.step, **{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in rec.items()},
                       "images_per_s": round(ips, 1), "threads": torch.get_num_threads(),
                       "time": round(self.elapsed(), 2)})
            if self.step % c.val_every == 0:
                self._validate_and_log()
            if self.step % c.preview_every == 0:
                self.preview()
            if self.step % c.checkpoint_every == 0:
                self.save()
                self.plot()
            if not c.quiet and (self.step % 10 == 0 or self.step == 1):
                self.say(self.progress_line(rec, ips))

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM ask the loop to stop after the step under way; a second one
        stops at once (KeyboardInterrupt). Only the main thread receives signals."""
        if not _main_thread():
            yield
            return

        def stop(signum: int, frame: Any) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        before = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _cancelled(self) -> TrainingCancelled:
        out, step, saved = self.out, self.step, self.saved_step
        if saved == step:
            return TrainingCancelled.spelled(
                lambda s: f"cancelled at step {step}; the checkpoint in {out} resumes it ({s('resume', True)}), and "
                          f"{out / MODEL_FILE} holds the model so far")
        if saved is not None:
            return TrainingCancelled.spelled(
                lambda s: f"cancelled at step {step}, before saving it; the checkpoint in {out} (step {saved}) "
                          f"resumes it ({s('resume', True)}), and {out / MODEL_FILE} holds the model of step {saved}")
        return TrainingCancelled(f"cancelled at step {step}, before the first checkpoint: nothing was saved to resume")

    def _validate_and_log(self) -> None:
        v = self.validate()
        self.val_history.append((self.step, v["val"]))
        self._log({"step": self.step, **{k: round(x, 6) for k, x in v.items()}, "time": round(self.elapsed(), 2)})

    def progress_line(self, rec: dict[str, Any], ips: float) -> str:
        p = self.plateau()
        val = f"val {self.val_history[-1][1]:.4f}" if self.val_history else "val -"
        est = f"when to stop: after {MIN_POINTS} validations" if p is None else describe_plateau(p)
        each = ", ".join(f"{name} {rec[f'loss_{name}']:.4f}" for name in self.data)
        return (f"step {self.step}  batch {rec['batch']}x{len(self.data)}  {ips:.0f} img/s  loss {rec['loss']:.4f} "
                f"({each})  {val}  {est}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=4)
def _fit_history(history: tuple[tuple[int, float], ...]) -> Plateau | None:
    # done() asks every step; the estimate only changes when a validation comes in
    return fit_plateau([s for s, _ in history], [v for _, v in history])
