"""Checkpoints: everything a run needs to go on after a kill -9, in one safetensors file.

``out/checkpoint/checkpoint.safetensors`` holds the weights (``model.*``), the optimizer state
(``optim.<param id>.<key>``) and the RNG states (``rng.cpu``, ``rng.<name>``); its header holds
the rest as JSON (step, validation history, log length, optimizer param groups, the settings a
resume must match). Written under a temporary name and renamed: a kill leaves the old
checkpoint or the new one. A checkpoint that cannot be read whole (truncated, damaged, from
another layout) is a :class:`ResumeError` naming the file, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from swapgraph.runtime.errors import UsageError
from swapgraph.runtime.files import atomic_path

from .config import ResumeError

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.safetensors"
_META_KEY = "swapgraph_checkpoint"


def checkpoint_path(out: Path) -> Path:
    """Where the checkpoint of the run in model folder ``out`` lives."""
    return Path(out) / CHECKPOINT_DIR / CHECKPOINT_FILE


def read_checkpoint_meta(out: Path) -> dict[str, Any]:
    """The header of the checkpoint in ``out``, without its tensors; UsageError when there is none."""
    path = checkpoint_path(out)
    if not path.is_file():
        raise UsageError(f"{path.parent}: no checkpoint to resume from; train without resume to start a new run")
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()[_META_KEY])
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise ValueError("no run settings in its header")
    except Exception as exc:  # safetensors, json and a missing key each say it their own way
        raise damaged(path, exc) from None
    return meta


def damaged(path: Path, exc: BaseException) -> ResumeError:
    """The error for a checkpoint file that cannot be read whole."""
    why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}" if str(exc) else type(exc).__name__
    return ResumeError.spelled(lambda s: f"{path}: truncated or damaged ({why}); training cannot resume from it: "
                                         f"start a new run with {s('force', True)} (the model beside it stays until "
                                         "the new run saves its own), or restore the file")


def save_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generators: dict[str, torch.Generator], meta: dict[str, Any]) -> None:
    """Write the checkpoint of ``out`` whole: weights, optimizer, the CPU's and ``generators``' RNG
    states, and ``meta`` (JSON-able; the optimizer's param groups are added to it)."""
    path = checkpoint_path(out)
    path.parent.mkdir(exist_ok=True)
    # a torch.compile'd model keeps its weights under _orig_mod: save the plain names
    tensors = {f"model.{k}": v.detach().contiguous().cpu()
               for k, v in getattr(model, "_orig_mod", model).state_dict().items()}
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for key, value in st.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    tensors["rng.cpu"] = torch.get_rng_state()
    for name, g in generators.items():
        tensors[f"rng.{name}"] = g.get_state()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps({**meta, "param_groups": opt["param_groups"]})})


def load_checkpoint(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generators: dict[str, torch.Generator], device: torch.device) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer``, the CPU's and
    ``generators``' RNGs (optimizer state onto ``device``); returns the header's ``meta``."""
    meta = read_checkpoint_meta(out)
    path = checkpoint_path(out)
    try:
        tensors = load_file(str(path), device="cpu")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v.to(device) if key != "step" else v
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.cpu"])
        for name, g in generators.items():
            g.set_state(tensors[f"rng.{name}"])
    except Exception as exc:  # a short file, missing tensors, tensors of another shape: all one thing to a user
        raise damaged(path, exc) from None
    return meta
