"""The swap model: one shared encoder, one decoder per identity.

Encoding a face of person A and decoding it with B's decoder puts B's face on A's
expression. Presets by name:

- ``classic-64``: the classic layout. 64 px input (the central 160 px of a 256 px crop);
  encoder convolutions 128-256-512-1024 (5x5, stride 2), a 1024 dense bottleneck, a
  4x4x1024 reshape and an upscale to 8x8x512; each decoder upscales to 64 px.
- ``lite-64``: the same shape, narrow enough to train usefully on two CPU cores in minutes.
- ``hd-128`` and ``hd-256``: for faces that are large in the plate.

A model is a folder: ``model.safetensors`` (weights) and ``model.json`` (preset,
resolution, crop and coverage, identities, bucket, training summary; a base's facesets, a
pair's base). Loading reads
tensors with safetensors and JSON with pydantic; nothing is ever unpickled, and a folder
holding a pickle is refused.
"""

from __future__ import annotations

import collections
import json
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save_file
from torch import nn

from swapgraph.runtime.errors import SwapgraphError
from swapgraph.runtime.files import atomic_path

MODEL_FILE = "model.safetensors"
INFO_FILE = "model.json"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".npy", ".joblib"}


class ModelError(SwapgraphError, ValueError):
    """A model folder that cannot be loaded (missing files, unknown preset, a pickle)."""


@dataclass(frozen=True)
class Preset:
    """An architecture: input size, encoder and decoder widths, bottleneck."""

    size: int
    encoder: tuple[int, ...]  # one stride-2 convolution each, down to 4x4
    dense: int
    inter: int  # channels of the 4x4 reshape; upscaled to inter // 2 at 8x8
    decoder: tuple[int, ...]  # one 2x upscale each, from 8x8 to ``size``
    residual: bool = False  # a residual block (two 3x3 convolutions and a skip) after each decoder upscale

    def __post_init__(self) -> None:
        if self.size >> len(self.encoder) != 4 or 8 << len(self.decoder) != self.size:
            raise ValueError(f"preset of size {self.size}: encoder must reach 4x4 and decoder return to {self.size}")


PRESETS: dict[str, Preset] = {
    "classic-64": Preset(64, (128, 256, 512, 1024), 1024, 1024, (256, 128, 64)),
    "lite-64": Preset(64, (32, 64, 128, 256), 128, 256, (64, 32, 16)),
    # issue 22's recipe study: lite-64 with a 512-wide bottleneck, with residual decoder blocks, at 128 px input
    "lite-64w": Preset(64, (32, 64, 128, 256), 512, 256, (64, 32, 16)),
    "lite-64r": Preset(64, (32, 64, 128, 256), 128, 256, (64, 32, 16), residual=True),
    "lite-128": Preset(128, (32, 64, 128, 256, 512), 128, 256, (64, 32, 16, 8)),
    "hd-128": Preset(128, (64, 128, 256, 512, 1024), 1024, 1024, (256, 128, 64, 32)),
    "hd-256": Preset(256, (32, 64, 128, 256, 512, 1024), 1024, 1024, (256, 128, 64, 32, 16)),
}


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.LeakyReLU(0.1))


def _upscale(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.LeakyReLU(0.1), nn.PixelShuffle(2))


class _Residual(nn.Module):
    """x + conv(leaky(conv(x))), then a leaky ReLU: detail the upscale alone does not place."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, padding=1))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def icnr_(model: nn.Module) -> int:
    """ICNR initialisation (Aitken et al. 2017) of every convolution that feeds a pixel
    shuffle: the r*r sub-kernels of each output channel start equal, so the upscale starts
    as a nearest-neighbour one and has no checkerboard to unlearn. Returns how many."""
    done = 0
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for conv, shuffle in zip(layers, layers[2:]):
            if isinstance(conv, nn.Conv2d) and isinstance(shuffle, nn.PixelShuffle):
                r2 = shuffle.upscale_factor ** 2
                sub = torch.empty(conv.out_channels // r2, *conv.weight.shape[1:], device=conv.weight.device)
                nn.init.kaiming_uniform_(sub, a=0.1)
                with torch.no_grad():
                    conv.weight.copy_(sub.repeat_interleave(r2, dim=0))
                    if conv.bias is not None:
                        conv.bias.copy_(conv.bias[::r2].repeat_interleave(r2))
                done += 1
    return done


class Encoder(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, inter // 2, 8, 8)."""

    def __init__(self, p: Preset) -> None:
        super().__init__()
        chans = (3, *p.encoder)
        self.convs = nn.Sequential(*[_conv(a, b) for a, b in zip(chans, chans[1:])])
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(p.encoder[-1] * 16, p.dense),
                                   nn.Linear(p.dense, p.inter * 16))
        self.inter = p.inter
        self.up = _upscale(p.inter, p.inter // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.dense(self.convs(x)).view(-1, self.inter, 4, 4)
        return self.up(z)


class Decoder(nn.Module):
    """(B, inter // 2, 8, 8) -> (B, 3 [+1 mask], S, S) in [0, 1]."""

    def __init__(self, p: Preset, mask: bool) -> None:
        super().__init__()
        chans = (p.inter // 2, *p.decoder)
        self.ups = nn.Sequential(*[nn.Sequential(_upscale(a, b), _Residual(b)) if p.residual else _upscale(a, b)
                                   for a, b in zip(chans, chans[1:])])
        self.out = nn.Conv2d(p.decoder[-1], 4 if mask else 3, 5, padding=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.ups(z)))


class SwapModel(nn.Module):
    """Shared encoder, one decoder per identity (``decoders["a"]``, ``decoders["b"]``)."""

    def __init__(self, preset: str, identities: tuple[str, ...] = ("a", "b"), mask: bool = False) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ModelError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset_name = preset
        self.preset = PRESETS[preset]
        self.mask = mask
        self.encoder = Encoder(self.preset)
        self.decoders = nn.ModuleDict({name: Decoder(self.preset, mask) for name in identities})

    def forward(self, x: torch.Tensor, identity: str) -> torch.Tensor:
        """Faces (B, 3, S, S) in [0, 1] decoded as ``identity``: (B, 3 or 4, S, S) in [0, 1]."""
        return self.decoders[identity](self.encoder(x))

    def flops_per_image(self) -> float:
        """FLOPs (2 x multiply-adds) of one image through the encoder and one decoder."""
        total = 0.0

        def count(module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
            nonlocal total
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1]
                total += 2 * module.in_channels * k * out[0].numel()
            elif isinstance(module, nn.Linear):
                total += 2 * module.in_features * module.out_features

        hooks = [m.register_forward_hook(count) for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        try:
            with torch.no_grad():
                device = next(self.parameters()).device
                self(torch.zeros(1, 3, self.preset.size, self.preset.size, device=device), next(iter(self.decoders)))
        finally:
            for h in hooks:
                h.remove()
        return total


class ModelInfo(BaseModel):
    """What ``model.json`` holds."""

    model_config = ConfigDict(extra="allow")
    format: Literal["swapgraph-model"] = "swapgraph-model"
    version: Literal[1] = 1
    preset: str
    size: int
    crop: int = 256
    coverage: int = 160
    render: int | None = Field(None, description="side of the central square of the crop the model renders "
                                                 "(None: the coverage); the face's scale is set by the coverage")
    identities: list[str] = Field(default_factory=lambda: ["a", "b"])
    names: dict[str, str] = Field(default_factory=dict, description="identity -> faceset it was trained on")
    bucket: str | None = None
    mask: bool = False
    training: dict[str, Any] = Field(default_factory=dict)
    base: bool = Field(False, description="a base (`swapgraph pretrain`): one generic decoder, 'base', trained on "
                                          "the faces of many people; pairs start from it (`train --init`)")
    facesets: list[dict[str, Any]] = Field(default_factory=list, description="a base's facesets: path, faces, "
                                                                             "sha256 of faces.jsonl")
    init: dict[str, str] | None = Field(None, description="the base a pair started from: path and sha256 of its "
                                                          f"{MODEL_FILE}")


#: fields a model.json holds only where they say something: a pair trained from scratch has none
_ONLY_WHEN_SET = {"base", "facesets", "init"}


def refuse_pickles(folder: Path) -> None:
    """ModelError if any file in ``folder`` (recursively) is, or carries, a pickle."""
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(f"{path}: a pickle file in the model folder; swapgraph never unpickles, so remove it "
                             f"(weights belong in {MODEL_FILE})")
        with path.open("rb") as f:
            head = f.read(4)
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            raise ModelError(f"{path}: this file is a pickle; swapgraph never unpickles, so remove it")
        if head == b"PK\x03\x04":
            with zipfile.ZipFile(path) as z:
                if any(n.endswith(".pkl") for n in z.namelist()):
                    raise ModelError(f"{path}: a torch.save archive (pickle inside); swapgraph never unpickles, "
                                     "so remove it")


def read_info(folder: Path) -> ModelInfo:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise ModelError(f"{folder}: not a model folder (no {INFO_FILE}); train one with `swapgraph train`")
    try:
        info = ModelInfo.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        what = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        raise ModelError(f"{path}: not a valid model description ({what}); fix or retrain it") from None
    if info.preset not in PRESETS:
        raise ModelError(f"{path}: unknown preset {info.preset!r}; known presets: {', '.join(PRESETS)}")
    # the geometry conversion cuts and pastes by: a hand-edited or damaged value would fail deep inside it
    if info.size != PRESETS[info.preset].size:
        raise ModelError(f"{path}: size {info.size} does not fit preset {info.preset!r} ({PRESETS[info.preset].size} "
                         "px); fix or retrain it")
    if not 0 < info.coverage <= info.crop <= 8192:
        raise ModelError(f"{path}: coverage {info.coverage} of a {info.crop} px crop: expected 0 < coverage <= crop "
                         "<= 8192; fix or retrain it")
    if info.render is not None and not info.coverage <= info.render <= info.crop:
        raise ModelError(f"{path}: render {info.render}: must lie between the coverage ({info.coverage}) and the crop "
                         f"({info.crop}); fix or retrain it")
    return info


def load_model(folder: Path, device: torch.device | str = "cpu") -> tuple[SwapModel, ModelInfo]:
    """Load a model folder: JSON and safetensors only, checked before anything is built."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found; check the path")
    refuse_pickles(folder)
    info = read_info(folder)
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise ModelError(f"{folder}: no {MODEL_FILE}; the model was never saved, train it again")
    model = SwapModel(info.preset, tuple(info.identities), info.mask)
    try:
        state = load_file(str(weights), device=str(device))
        model.load_state_dict(state)
    except Exception as exc:  # safetensors and torch give many kinds; all mean the same to a user
        raise ModelError(f"{weights}: weights do not fit preset {info.preset!r} ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120]}); the file is damaged or from another preset") from None
    return model.to(device).eval(), info


_CACHE: "collections.OrderedDict[tuple, tuple[SwapModel, ModelInfo]]" = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()
#: models this process has read from disk (the rest came from the cache)
MODELS_READ = [0]


def load_model_cached(folder: Path, device: torch.device | str = "cpu", keep: int = 8) -> tuple[SwapModel, ModelInfo]:
    """``load_model``, once per process for each model file and device.

    A farm worker runs chunk after chunk of one shot: the model is read and moved to the
    GPU for the first chunk only. The key includes the weights' size and modification
    time, so a retrained model is loaded afresh. Inference only: callers must not train
    the returned model.
    """
    folder = Path(folder).resolve()
    try:
        st = (folder / MODEL_FILE).stat()
        key = (str(folder), st.st_mtime_ns, st.st_size, (folder / INFO_FILE).stat().st_mtime_ns, str(device))
    except OSError:
        return load_model(folder, device)  # its own clear error
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    loaded = load_model(folder, device)
    with _CACHE_LOCK:
        MODELS_READ[0] += 1
        _CACHE[key] = loaded
        while len(_CACHE) > keep:
            _CACHE.popitem(last=False)
    return loaded


def save_model(folder: Path, model: SwapModel, info: ModelInfo) -> None:
    """Write weights and description under temporary names, then rename each into place."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in _plain_state(model).items()}
    # the weights are renamed into place first, then their description
    with atomic_path(folder / INFO_FILE) as tmp_j, atomic_path(folder / MODEL_FILE) as tmp_w:
        save_file(state, str(tmp_w))
        tmp_j.write_text(info.model_dump_json(indent=2, exclude=_ONLY_WHEN_SET - info.model_fields_set) + "\n")


def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of a model, also when wrapped by torch.compile."""
    inner = getattr(model, "_orig_mod", model)
    return inner.state_dict()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bank_models(folder: Path) -> dict[str, Path]:
    """A model bank: a folder with one model folder per orientation bucket.

    Returns {bucket: model folder}; a plain model folder is a bank of one (its own bucket,
    or ``frontal`` when it has none).
    """
    folder = Path(folder)
    if (folder / INFO_FILE).is_file():
        return {read_info(folder).bucket or "frontal": folder}
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        if (sub / INFO_FILE).is_file():
            info = read_info(sub)
            bucket = info.bucket or sub.name
            if bucket in found:
                raise ModelError(f"{folder}: two models for bucket {bucket!r} ({found[bucket].name}, {sub.name}); "
                                 "keep one per bucket")
            found[bucket] = sub
    if not found:
        raise ModelError(f"{folder}: neither a model folder nor a bank of them; train with `swapgraph train`")
    return found


__all__ = ["PRESETS", "ModelError", "ModelInfo", "SwapModel", "bank_models", "icnr_", "load_model", "save_model"]
