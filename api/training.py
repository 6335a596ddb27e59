"""Facesets and training: inspect and filter the faces an extraction graph wrote, train a
swap model on two of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from swapgraph.nodes.faceset import faceset_stats, filter_faceset, read_faceset
from swapgraph.training.config import NamesSettings, TrainConfig, parse_batch_schedule
from swapgraph.training.trainer import Trainer, TrainingCancelled

__all__ = ["NamesSettings", "TrainConfig", "TrainingCancelled", "faceset_buckets", "faceset_summary", "filter_faceset",
           "parse_batch_schedule", "train"]

def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a model into ``config.out``; returns the run's summary (steps,
    seconds, validation score, the when-to-stop estimate). Every input is checked before
    anything is written; checkpoints survive a kill. ``log`` gets the progress lines
    (default: printed unless ``config.quiet``).

    ``out`` is the trainer's alone: a folder with files it did not write is refused, a model
    there is continued only with ``resume`` and replaced only with ``force``, and a second run
    into it while this one holds it is refused (OutputError). Ctrl-C or SIGTERM saves the
    checkpoint and the model so far, then raises :class:`TrainingCancelled` (a ``Cancelled``,
    exit code 130). Errors whose fix names settings are :class:`NamesSettings`: ``as_flag()``
    spells them as command-line flags."""
    return (Trainer(config, log=log) if log else Trainer(config)).run()


def faceset_summary(folder: Path) -> str:
    """Faces per bucket, blur and yaw histograms of a faceset, as text."""
    return faceset_stats(Path(folder))


def faceset_buckets(folder: Path) -> list[str]:
    """The orientation bucket of each face of a faceset (UsageError if it is not one)."""
    return [r["bucket"] for r in read_faceset(Path(folder))]
