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

from . import DEMO_STEPS
from .clips import animate_photo, write_clip


#: what a real shot needs, measured on the shared clips (README, "What a base is worth")
REAL_SHOT = ("a real shot needs far more: on 720p footage, 20 minutes of one CPU core from a 15-minute base "
             "(swapgraph pretrain) gives the eyes and mouth their shape and still a soft face; a face that reads as "
             "the person needs hours of CPU training from a base, or a GPU (expected minutes; not yet measured)")


def run_demo(out: Path, quiet: bool = False, steps: int = DEMO_STEPS) -> SwapResult:
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
    say(f"took {time.perf_counter() - started:.0f} s; {steps} steps on two photos make a soft likeness, and "
        + REAL_SHOT)
    return result
