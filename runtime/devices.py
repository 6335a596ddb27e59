"""Where work runs: a node's device, and the precision a model runs at there.

CPU and CUDA are one code path with a device argument; these are the only places that
choose between them.
"""

from __future__ import annotations

import torch

from .errors import UsageError


def resolve_device(requested: str, node_setting: str | None, supported: tuple[str, ...]) -> torch.device:
    """Where a node runs: its own setting, else the graph's; ``auto`` picks CUDA when present.

    A node that cannot run on CUDA (Decode, Encode) stays on the CPU under a graph-wide
    ``cuda``; a node that says ``cuda`` itself was already checked by validation.
    """
    choice = node_setting if node_setting not in (None, "auto") else requested
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("device 'cuda' requested but torch sees no CUDA device; set the device to cpu or auto")
        if "cuda" not in supported:
            choice = "cpu"
    return torch.device(choice)


def model_autocast(device: torch.device) -> torch.autocast:
    """The precision a swap model runs at on ``device``: bfloat16 autocast on CUDA (tensor
    cores, and the range float16 lacks), plain float32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)
