"""What a training run is told: :class:`TrainConfig` (a pair) or :class:`PretrainConfig` (a base),
the batch schedule, the run folder's log, and the errors whose fix names other settings
(:class:`NamesSettings`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from swapgraph.runtime.errors import SwapgraphError, UsageError

LOG_FILE = "log.jsonl"  # in the run's ``out`` folder: one JSON record per step and per validation

#: how a message names a setting: ``spell("resume", True)``, ``spell("a", path)``, ``spell("out")``
Spell = Callable[..., str]
_E = TypeVar("_E", bound="NamesSettings")


def _keyword(name: str, value: object = None) -> str:
    return name if value is None else f"{name}={value}"


def _flag(name: str, value: object = None) -> str:
    flag = "--" + name.replace("_", "-")
    return flag if value is None or value is True else f"{flag} {value}"


class NamesSettings(SwapgraphError):
    """An error whose fix names settings: ``str()`` spells them as the Python API's keywords
    (``resume=True``), :meth:`as_flag` as the command line's flags (``--resume``). Made by
    :meth:`spelled` from a function of the spelling, so both texts say the same."""

    def __init__(self, text: str, flag_text: str | None = None) -> None:
        super().__init__(text)
        self.flag_text = text if flag_text is None else flag_text

    @classmethod
    def spelled(cls: type[_E], message: Callable[[Spell], str]) -> _E:
        return cls(message(_keyword), message(_flag))

    def as_flag(self) -> str:
        """The message with each setting spelled as its command-line flag."""
        return self.flag_text


class ResumeError(NamesSettings, UsageError):
    """A run that cannot resume from its checkpoint: other settings or facesets, or a damaged file."""


class RecipeError(NamesSettings, UsageError):
    """A recipe setting out of its range (learning rate, warm-up, Adam's beta1)."""


class InitError(NamesSettings, UsageError):
    """A pretrained start the run cannot take: not a base, or a base of other settings."""


def parse_batch_schedule(text: str) -> list[tuple[int, int]]:
    """``"0:8,2000:16,5000:64"`` -> [(0, 8), (2000, 16), (5000, 64)]: batch size from each step on."""
    pairs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", part)
        if not m or int(m.group(2)) < 1:
            raise UsageError(f"batch schedule {text!r}: expected STEP:BATCH pairs such as 0:8,2000:16")
        pairs.append((int(m.group(1)), int(m.group(2))))
    pairs.sort()
    if pairs[0][0] != 0:
        raise UsageError(f"batch schedule {text!r}: the first entry must start at step 0, e.g. 0:8")
    return pairs


#: the learning-rate decays a run may take, and where a cosine decay ends (a fraction of ``lr``)
LR_DECAYS = ("none", "cosine")
LR_FLOOR = 0.1


def lr_factor(step: int, progress: float | None, warmup: int, decay: str) -> float:
    """The fraction of the base learning rate at ``step``: a linear warm-up over ``warmup``
    steps, then for ``decay="cosine"`` a half cosine from 1 to :data:`LR_FLOOR` as
    ``progress`` (the run's fraction done, by steps or by minutes; None: unknown, as under
    ``--until plateau``, so no decay) goes from 0 to 1."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if decay == "cosine" and progress is not None:
        p = min(max(progress, 0.0), 1.0)
        f *= LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * p))
    return f


def batch_at(schedule: list[tuple[int, int]], step: int) -> int:
    """The batch size ``schedule`` (as :func:`parse_batch_schedule` returns) gives at ``step``."""
    return [b for s, b in schedule if s <= step][-1]


@dataclass(kw_only=True)
class RunSettings:
    """What ``train`` and ``pretrain`` share: the model folder ``out``, the recipe and when to stop
    (``steps``, ``minutes`` or ``until_plateau``; whichever comes first). The recipe's defaults live
    here only: the CLI reads them from this class."""

    out: Path
    preset: str = "lite-64"
    bucket: str | None = None
    batch_schedule: list[tuple[int, int]] = field(default_factory=lambda: [(0, 16)])
    steps: int | None = None
    minutes: float | None = None
    until_plateau: bool = False
    resume: bool = False
    force: bool = False  # replace the earlier run in ``out`` (only the files the trainer wrote there)
    seed: int = 0
    device: str = "auto"
    # the recipe that won issue 22's equal-time study (README, "The recipe at equal time")
    lr: float = 2e-4
    lr_warmup: int = 100  # steps of a linear rise to ``lr`` from lr/warmup (at most a tenth of ``steps``)
    lr_decay: str = "cosine"  # down to a tenth of ``lr`` over the run's --steps or --minutes ("none": constant)
    beta1: float = 0.5  # Adam's first-moment decay
    icnr: bool = True  # ICNR initialisation of the pixel-shuffle upscalers (a start from a base takes its weights)
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


@dataclass(kw_only=True)
class TrainConfig(RunSettings):
    """A pair: facesets ``a`` and ``b``, one decoder each; ``init``: a base (``swapgraph pretrain``'s
    model folder) whose encoder starts the encoder and whose decoder starts both decoders."""

    a: Path
    b: Path
    init: Path | None = None

    def identities(self) -> dict[str, list[Path]]:
        """Each decoder's name and the facesets it learns."""
        return {"a": [Path(self.a)], "b": [Path(self.b)]}


#: the one identity of a base: the faces of every faceset it was pretrained on, pooled
BASE = "base"


@dataclass(kw_only=True)
class PretrainConfig(RunSettings):
    """A base: the shared encoder and one generic decoder (``base``) trained on the faces of many
    people, ``facesets`` pooled (each step samples across them), for pairs to start from."""

    facesets: list[Path]

    def identities(self) -> dict[str, list[Path]]:
        return {BASE: [Path(f) for f in self.facesets]}
