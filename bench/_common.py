"""What the benchmarks share: the default clip and CPU time."""

from __future__ import annotations

import resource
from pathlib import Path

from swapgraph.runtime.demo import animate_photo, packaged_photo, write_clip

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP = REPO.parent / "shared" / "data" / "clips" / "d3.mp4"


def cpu_seconds() -> float:
    """CPU time of this process (all its threads), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def default_clip(tmp: Path) -> Path:
    """``../shared/data/clips/d3.mp4``, or a clip made from a packaged photo where it is absent."""
    if SHARED_CLIP.is_file():
        return SHARED_CLIP
    print(f"{SHARED_CLIP} not found; using a clip made from the packaged grace_hopper photo")
    return write_clip(tmp / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), 150))
