"""What a training run is told: :class:`TrainConfig`, the batch schedule, and the run folder's log."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from swapgraph.runtime.errors import UsageError

LOG_FILE = "log.jsonl"  # in the run's ``out`` folder: one JSON record per step and per validation


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


def batch_at(schedule: list[tuple[int, int]], step: int) -> int:
    """The batch size ``schedule`` (as :func:`parse_batch_schedule` returns) gives at ``step``."""
    return [b for s, b in schedule if s <= step][-1]


@dataclass
class TrainConfig:
    """One training run: facesets ``a`` and ``b``, the model folder ``out``, the recipe and when to stop
    (``steps``, ``minutes`` or ``until_plateau``; whichever comes first). The recipe's defaults live
    here only: the CLI reads them from this class."""

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
