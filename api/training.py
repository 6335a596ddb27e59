"""Facesets and training: inspect and filter the faces an extraction graph wrote, train a
swap model on two of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from swapgraph.nodes.faceset import faceset_stats, filter_faceset, read_faceset
from swapgraph.training.config import TrainConfig, parse_batch_schedule
from swapgraph.training.trainer import Trainer

__all__ = ["TrainConfig", "faceset_buckets", "faceset_summary", "filter_faceset", "parse_batch_schedule", "train"]

def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a model into ``config.out``; returns the run's summary (steps,
    seconds, validation score, the when-to-stop estimate). Every input is checked before
    anything is written; checkpoints survive a kill. ``log`` gets the progress lines
    (default: printed unless ``config.quiet``)."""
    return (Trainer(config, log=log) if log else Trainer(config)).run()


def faceset_summary(folder: Path) -> str:
    """Faces per bucket, blur and yaw histograms of a faceset, as text."""
    return faceset_stats(Path(folder))


def faceset_buckets(folder: Path) -> list[str]:
    """The orientation bucket of each face of a faceset (UsageError if it is not one)."""
    return [r["bucket"] for r in read_faceset(Path(folder))]
