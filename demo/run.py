"""``swapgraph demo``: ``swapgraph swap`` on inputs that installed packages ship.

No network and no ``../shared``: the shots are made by animating scikit-image's
``astronaut`` and matplotlib's ``grace_hopper.jpg`` (pan, zoom and a change of light) with
a tone for audio.
"""

from __future__ import annotations

import time
from pathlib import Path

from swapgraph.nodes.photos import packaged_photo
from swapgraph.pipeline.swap import SwapResult, swap

from .clips import animate_photo, write_clip


def run_demo(out: Path, quiet: bool = False, steps: int = 150) -> SwapResult:
    """The whole mission on packaged photos: two shots made from them, then ``swapgraph swap``
    on them (facesets, a bounded lite-64 training, the swapped shot with its sidecar, the
    loss plot, previews and QC). Run again, it does no work."""
    started = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    shots = {"astronaut": out / "shot_astronaut.mp4", "grace": out / "shot_grace.mp4"}
    for (name, path), photo, pan in zip(shots.items(), ("astronaut", "grace_hopper"), (0.08, -0.06)):
        if not path.is_file():  # made once: a second demo finds the same shots and does no work
            write_clip(path, animate_photo(packaged_photo(photo), 60, size=(384, 384), pan=pan))
    say("made two shots by animating astronaut and grace_hopper (pan, zoom, light); swapping grace onto the astronaut")
    result = swap(shots["astronaut"], shots["grace"], out / "astronaut_as_grace.mp4", steps=steps, bank="never",
                  quiet=quiet, say=say)
    say(f"took {time.perf_counter() - started:.0f} s")
    return result
