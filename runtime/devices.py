"""Where work runs: a node's device, and the precision a model runs at there.

CPU and CUDA are one code path with a device argument; these are the only places that
choose between them.
"""

from __future__ import annotations

import os
import time

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


def allowed_cores() -> int:
    """The cores this process may run on: its CPU affinity (a farm's or a container's
    share), else every core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _busy_seconds() -> float | None:
    """Seconds every core has spent busy since boot (/proc/stat), None where unknown."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CoreMeter:
    """How many cores this process can actually get: its allowed cores less those other
    processes keep busy, measured over the time between two ``reading`` calls (the
    machine's busy time less this process's own CPU time). A workstation or farm node is
    rarely idle, and torch's threads spin-wait for a core another process holds: a run
    that asks for fewer threads than cores then keeps its speed.
    """

    def __init__(self) -> None:
        self.allowed = allowed_cores()
        self._mark = (time.monotonic(), _busy_seconds(), time.process_time())

    def others_busy(self) -> float | None:
        """Cores other processes kept busy since the last reading (None where unknown)."""
        now, busy, own = time.monotonic(), _busy_seconds(), time.process_time()
        (then, busy0, own0), self._mark = self._mark, (now, busy, own)
        if busy is None or busy0 is None or now - then < 0.05:
            return None
        return max(0.0, ((busy - busy0) - (own - own0)) / (now - then))

    def usable(self) -> int:
        """Threads to use now: the allowed cores less the cores others keep busy, at least one
        (a core counts as taken when others use more than a third of it)."""
        others = self.others_busy()
        if others is None:
            return self.allowed
        return max(1, self.allowed - int(others + 2 / 3))


def usable_cores(sample: float = 0.25) -> int:
    """``CoreMeter.usable`` over a sample of ``sample`` seconds, for a run about to start."""
    meter = CoreMeter()
    time.sleep(sample)
    return meter.usable()
