"""Pretrained starts: a base, and pairs that start from it.

A **base** (``swapgraph pretrain``) is a model folder like any other (``model.safetensors`` and
``model.json``) whose one identity, ``base``, was trained on the faces of many people pooled;
``model.json`` says ``"base": true`` and lists its facesets with their face counts. A pair
trained with ``init`` starts from it: the encoder from the base's encoder, both decoders from
the base's decoder. The run's preset, mask, the square it renders and the facesets' crop and
coverage must be the base's (:func:`check_fits`); the pair's ``model.json`` records the base
(:meth:`Base.record`: its path and the SHA-256 of its weights).

A pair is not a base: each of its decoders has learned one person, and starting a new pair's
decoders from one of them starts both from that person's face. :func:`read_base` refuses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from swapgraph.nodes.swap_model import INFO_FILE, MODEL_FILE, ModelError, ModelInfo, SwapModel, load_model, read_info

from .config import BASE, InitError


@dataclass(frozen=True)
class Base:
    """A base read from its folder: where, what ``model.json`` says, the SHA-256 of its weights."""

    path: Path
    info: ModelInfo
    sha256: str

    @property
    def render(self) -> int:
        """The square it renders (its coverage when ``model.json`` names none)."""
        return self.info.render or self.info.coverage

    def record(self) -> dict[str, str]:
        """What a pair's ``model.json`` and checkpoint keep of the base it started from."""
        return {"path": str(self.path), "sha256": self.sha256}


def weights_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    with (Path(folder) / MODEL_FILE).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):  # hashlib.file_digest is Python 3.11's
            digest.update(block)
    return digest.hexdigest()


def read_base(path: Path) -> Base:
    """The base in ``path``; InitError (one line, naming ``init``) when it is not a model folder,
    is a pair rather than a base, or holds no weights. Reads JSON and hashes the weights; nothing
    is unpickled (``load_model``'s rules hold when :func:`start_from` loads it)."""
    path = Path(path).resolve()
    if not (path / INFO_FILE).is_file():
        raise InitError.spelled(lambda s: f"{s('init', path)}: not a model folder (no {INFO_FILE}); give a base "
                                          "that `swapgraph pretrain` wrote")
    try:
        info = read_info(path)
    except ModelError as exc:
        problem = str(exc)
        raise InitError.spelled(lambda s: f"{s('init', path)}: {problem}") from None
    if not info.base:
        raise InitError.spelled(
            lambda s: f"{s('init', path)}: a pair (identities {', '.join(info.identities)}), not a base: each of "
                      "its decoders has learned one person; give a base that `swapgraph pretrain` wrote, or "
                      f"continue this pair in its own folder ({s('resume', True)})")
    if info.identities != [BASE]:
        raise InitError.spelled(lambda s: f"{s('init', path)}: a base whose {INFO_FILE} names identities "
                                          f"{info.identities}, not [{BASE!r}]; pretrain it again")
    if not (path / MODEL_FILE).is_file():
        raise InitError.spelled(lambda s: f"{s('init', path)}: no {MODEL_FILE}; the base was never saved, "
                                          "pretrain it again")
    return Base(path, info, weights_sha256(path))


def check_fits(base: Base, *, preset: str, mask: bool, render: int, crop: int, coverage: int) -> None:
    """InitError unless a run of ``preset``, ``mask`` and ``render`` on facesets of ``crop`` px
    crops at ``coverage`` can start from ``base``: the message names the base's value and the
    setting that fixes it."""
    b = base.info
    if b.preset != preset:
        raise InitError.spelled(lambda s: f"{s('init', base.path)}: a base of preset {b.preset}, and this run trains "
                                          f"{preset}; train with {s('preset', b.preset)}, or pretrain a {preset} base")
    if b.mask != mask:
        raise InitError.spelled(
            lambda s: f"{s('init', base.path)}: a base {'with' if b.mask else 'without'} a mask channel; train "
                      f"{'with' if b.mask else 'without'} {s('mask', True)}, or pretrain a base "
                      f"{'without' if b.mask else 'with'} it")
    if (b.crop, b.coverage) != (crop, coverage):
        raise InitError.spelled(
            lambda s: f"{s('init', base.path)}: a base of {b.crop} px crops at coverage {b.coverage}, and these "
                      f"facesets are {crop} px at coverage {coverage}; extract them with the base's Align settings "
                      "(crop and coverage), or pretrain a base from facesets aligned like them")
    if base.render != render:
        raise InitError.spelled(lambda s: f"{s('init', base.path)}: a base that renders {base.render} px, and this "
                                          f"run renders {render}; train with {s('render', base.render)}, or "
                                          f"pretrain a base with {s('render', render)}")


def start_from(model: SwapModel, base: Base) -> None:
    """Set ``model``'s encoder to the base's and every decoder to the base's decoder (in place).
    ModelError when the base's weights cannot be loaded (a pickle beside them, damaged weights)."""
    trained, _ = load_model(base.path)
    model.encoder.load_state_dict(trained.encoder.state_dict())
    for decoder in model.decoders.values():
        decoder.load_state_dict(trained.decoders[BASE].state_dict())
