"""The Swap node: trained models put the other identity's face into aligned crops."""

from __future__ import annotations

import sys
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from swapgraph.runtime.devices import model_autocast
from swapgraph.runtime.errors import NodeError
from swapgraph.runtime.node import InputPath, Issue, Node, NodeSchema, Params, Port, RunContext

from .align import model_input
from .ports import BUCKETS, FaceCrops, Masks
from .resample import resize_images
from . import swap_model
from .swap_model import ModelError, SwapModel, bank_models, load_model_cached


def nearest_bucket(bucket: str, available: list[str]) -> str:
    """The available bucket closest in orientation (frontal < three_quarter < side)."""
    order = {b: i for i, b in enumerate(BUCKETS)}
    return min(available, key=lambda b: (abs(order[b] - order[bucket]), order[b]))


def swap_crops(model: SwapModel, crops: torch.Tensor, render: int, identity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops (N, 3, S, S) in [0, 1] with their central ``render`` pixels replaced by
    ``model``'s rendering of ``identity``, resized back from the model's size; and the
    model's mask (N, 1, S, S): its learned mask channel in that square, or the whole
    square for a model without one. Outside the square the crops are the plate's."""
    if render > crops.shape[-1]:
        raise NodeError(f"the model renders {render} px, the crops are {crops.shape[-1]}; set Align's crop to at "
                        f"least {render}")
    size = model.preset.size
    x = model_input(crops, render, size)
    with torch.no_grad(), model_autocast(crops.device):
        y = model(x, identity).float()
    pad = (crops.shape[-1] - render) // 2
    inner = (slice(None), slice(None), slice(pad, pad + render), slice(pad, pad + render))
    out = crops.clone()
    out[inner] = resize_images(y[:, :3], (render, render), "bicubic").clamp(0, 1)
    mask = torch.zeros_like(crops[:, :1])
    if y.shape[1] == 4:
        mask[inner] = resize_images(y[:, 3:].expand(-1, 3, -1, -1), (render, render), "bilinear")[:, :1]
    else:
        mask[inner] = 1.0
    return out, mask


def held_bucket(wanted: list[str], hold: int) -> str:
    """The model bucket in use given a track's wanted buckets in a window, oldest first.

    The bucket of the most recent run of equal consecutive entries that is at least
    ``hold`` long; if no run is that long, the most common entry, ties going to the one
    seen first in the window: the best stand-in for "the model already in use", so
    neither a track's second frame nor an even mix of flickers switches the model.
    """
    if not wanted:
        raise ValueError("held_bucket: no entries")
    end = len(wanted)
    while end > 0:
        start = end - 1
        while start > 0 and wanted[start - 1] == wanted[end - 1]:
            start -= 1
        if end - start >= hold:
            return wanted[end - 1]
        end = start
    counts = Counter(wanted)
    most = max(counts.values())
    return next(w for w in wanted if counts[w] == most)


class SwapParams(Params):
    model: InputPath = Field(description="a model folder, or a bank: a folder with one model folder per bucket")
    direction: Literal["a_to_b", "b_to_a"] = Field("a_to_b", description="a_to_b puts B's face on the plate's A")
    hold: int = Field(5, ge=1, le=1000, description="frames a face's new bucket must last before its model changes")


class Swap(Node):
    """Swap faces: encode each crop and decode it as the other identity, batched on the device.

    Takes a model or a model bank (one model per orientation bucket) and picks the model
    for each face by its bucket (a bucket without a model wants the nearest one, and says
    so once), held per track so the model does not flip on a threshold. The rule looks
    only at the track's wanted buckets in the last 2 x hold frames: the model is that of
    the most recent run of at least ``hold`` consecutive faces wanting one bucket; if no
    run is that long, the bucket most faces in the window want (ties: the one seen first
    in the window, the stand-in for the model in use). So a new bucket takes over once it
    has lasted ``hold`` frames, and a flicker shorter than ``hold`` never switches the
    model while the window still holds ``hold`` frames of the bucket in use. Where no
    such run is left (flickers crowding the window) a clear majority decides, which can
    switch it. bf16 on CUDA.

    Pre-roll: 2 x hold - 1 frames (9 by default): the model for frame n depends only on
    the faces of frames n - pre-roll .. n.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "aligned crops of the plate")},
                        outputs={"crops": Port(FaceCrops, "the same crops with the swapped face"),
                                 "masks": Port(Masks, "the model's learned mask (or its coverage square)")},
                        params=SwapParams, category="swap")

    params: SwapParams

    @classmethod
    def preroll(cls, params: SwapParams) -> int:  # type: ignore[override]
        return 2 * params.hold - 1

    def check(self, connected: set[str]) -> list[Issue]:
        from .swap_model import read_info, refuse_pickles

        renders: set[int] = set()
        try:
            for path in bank_models(Path(self.params.model)).values():
                refuse_pickles(path)
                info = read_info(path)
                if info.base:
                    return [Issue("param 'model'", f"{path}: a base (swapgraph pretrain), with one decoder: it "
                                  "swaps no face", "train a pair from it (swapgraph train --init) and give that")]
                renders.add(info.render or info.coverage)
        except ModelError as exc:
            return [Issue("param 'model'", str(exc))]
        if len(renders) > 1:
            return [Issue("param 'model'", f"the bank's models render squares of {sorted(renders)} px",
                          "train every model of a bank to render the same square")]
        return []

    def open(self, ctx: RunContext) -> None:
        self.models: dict[str, tuple[SwapModel, Any]] = {}
        read_before = swap_model.MODELS_READ[0]
        for bucket, path in bank_models(Path(self.params.model)).items():
            model, info = load_model_cached(path, self.device)  # once per process: farm workers reuse it
            self.models[bucket] = (model, info)
        # one rendered square for all (check() refuses a mixed bank): masks and corrections are clipped to it
        self.render = max(info.render or info.coverage for _, info in self.models.values())
        # track -> (frame, wanted bucket) of its faces in the last 2 x hold frames, oldest first
        self.wanted: dict[int, deque[tuple[int, str]]] = {}
        self.frame: int | None = None
        self.warned: set[str] = set()
        self.counts = {"faces_swapped": 0, **{f"faces_{b}": 0 for b in self.models},
                       # 0 when this process had them already (a farm worker's later chunks)
                       "models_read": swap_model.MODELS_READ[0] - read_before}

    def _model_bucket(self, track: int, bucket: str, frame: int) -> str:
        """The model bucket for a face of ``track`` in source frame ``frame`` (frames in order)."""
        available = list(self.models)
        want = bucket if bucket in self.models else nearest_bucket(bucket, available)
        if bucket not in self.models and bucket not in self.warned:
            self.warned.add(bucket)
            print(f"warning: node {self.id!r}: no model for {bucket} faces; using the {want} model",
                  file=sys.stderr)
        first = frame - 2 * self.params.hold + 1
        if frame != self.frame:  # forget tracks not seen in the window
            self.frame = frame
            self.wanted = {k: v for k, v in self.wanted.items() if v[-1][0] >= first}
        seen = self.wanted.setdefault(track, deque())
        seen.append((frame, want))
        while seen[0][0] < first:
            seen.popleft()
        return held_bucket([w for _, w in seen], self.params.hold)

    def process(self, crops: FaceCrops) -> dict[str, Any]:
        if not len(crops):
            crops = replace(crops, rendered=self.render)
            return {"crops": crops, "masks": Masks(torch.zeros_like(crops.crops[:, :1]), crops)}
        identity = "b" if self.params.direction == "a_to_b" else "a"
        picks = [self._model_bucket(f.track, f.bucket, crops.frames.index[r]) for f, r in zip(crops.faces, crops.row)]
        out = crops.crops.clone()
        masks = torch.zeros_like(out[:, :1])
        render = self.render
        for bucket in set(picks):
            model, info = self.models[bucket]
            if info.coverage != crops.coverage:
                raise NodeError(f"node {self.id!r}: the model was trained on a coverage of {info.coverage} px, the "
                                f"crops have {crops.coverage}; set Align's coverage to {info.coverage}")
            rows = [i for i, b in enumerate(picks) if b == bucket]
            out[rows], masks[rows] = swap_crops(model, crops.crops[rows], render, identity)
            self.counts[f"faces_{bucket}"] += len(rows)
        self.counts["faces_swapped"] += len(picks)
        swapped = replace(crops, crops=out, rendered=render)
        return {"crops": swapped, "masks": Masks(masks, swapped)}

    def stats(self) -> dict[str, Any]:
        return dict(getattr(self, "counts", {}))
