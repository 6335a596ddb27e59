"""Facesets and training: inspect and filter the faces an extraction graph wrote, train a
swap model on two of them, pretrain a base on many."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from swapgraph.nodes.faceset import faceset_stats, filter_faceset, read_faceset
from swapgraph.nodes.swap_model import PRESETS
from swapgraph.training.config import LR_DECAYS, NamesSettings, PretrainConfig, TrainConfig, parse_batch_schedule
from swapgraph.training.trainer import Trainer, TrainingCancelled

#: the model presets a run may name (``--preset``)
PRESET_NAMES = tuple(PRESETS)

__all__ = ["LR_DECAYS", "NamesSettings", "PRESET_NAMES", "PretrainConfig", "TrainConfig", "TrainingCancelled", "faceset_buckets", "faceset_summary",
           "filter_faceset", "parse_batch_schedule", "pretrain", "train"]


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
    spells them as command-line flags.

    With ``config.init`` the pair starts from a base (see :func:`pretrain`): the encoder from the
    base's, both decoders from its decoder; the preset, mask, render and the facesets' crop and
    coverage must be the base's, and ``model.json`` records the base (path, SHA-256 of its
    weights). ``init`` with ``resume`` is refused: the checkpoint holds the weights already."""
    return (Trainer(config, log=log) if log else Trainer(config)).run()


def pretrain(config: PretrainConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a base into ``config.out``: the shared encoder and one generic decoder on
    the faces of ``config.facesets`` pooled (each step samples across them; the held-out faces
    come from the pool). The same recipe, checkpoints, signals and folder rules as :func:`train`;
    ``model.json`` says ``"base": true`` and lists the facesets with their face counts."""
    return (Trainer(config, log=log) if log else Trainer(config)).run()


def faceset_summary(folder: Path) -> str:
    """Faces per bucket, blur and yaw histograms of a faceset, as text."""
    return faceset_stats(Path(folder))


def faceset_buckets(folder: Path) -> list[str]:
    """The orientation bucket of each face of a faceset (UsageError if it is not one)."""
    return [r["bucket"] for r in read_faceset(Path(folder))]
