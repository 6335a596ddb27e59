"""``swapgraph demo``: the pipeline on inputs that installed packages ship.

No network and no ``../shared``: the shot is made by animating matplotlib's
``grace_hopper.jpg`` (pan, zoom and a change of light) with a tone for audio.
"""

from __future__ import annotations

import time
from pathlib import Path

from swapgraph import api
from swapgraph.nodes.photos import packaged_photo
from swapgraph.qc.runner import qc_paths, run_qc
from swapgraph.runtime.provenance import sidecar_path

from .clips import animate_photo, write_clip


def _run_preset(name: str, overrides: list[str]) -> api.GraphSpec:
    spec = api.load(api.presets()[name], overrides)
    api.run(spec)
    return spec


def run_demo(out: Path, quiet: bool = False, steps: int = 150) -> None:
    """The whole mission on packaged photos: two shots, facesets, a bounded lite-64
    training, the swapped shot with its sidecar, the loss plot, previews and QC."""
    started = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    def say(text: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:5.0f} s] {text}", flush=True)

    shots = {"astronaut": write_clip(out / "shot_astronaut.mp4", animate_photo(packaged_photo("astronaut"), 60,
                                                                                size=(384, 384))),
             "grace": write_clip(out / "shot_grace.mp4", animate_photo(packaged_photo("grace_hopper"), 60,
                                                                        size=(384, 384), pan=-0.06))}
    say("made two shots by animating astronaut and grace_hopper (pan, zoom, light)")
    facesets = {}
    for name, shot in shots.items():
        facesets[name] = out / f"faceset_{name}"
        extract = _run_preset("extract.json", [f"plate.path={shot}", f"faceset.path={facesets[name]}"])
        say("extracted " + api.faceset_summary(facesets[name]).splitlines()[0])
    api.preview(extract, "faces", 10, output="faces").save(out / "preview_faces.png")
    api.preview(extract, "crops", 10, output="crops").save(out / "preview_crops.png")
    model = out / "model_astronaut_to_grace"
    say(f"training lite-64 for {steps} steps (A = astronaut, the plate; B = grace)")
    summary = api.train(api.TrainConfig(a=facesets["astronaut"], b=facesets["grace"], out=model, preset="lite-64",
                                        batch_schedule=[(0, 16)], steps=steps, val_every=25, preview_every=50,
                                        checkpoint_every=100, quiet=True), log=say)
    say(f"trained: validation {summary['val']:.4f}" + (f"; {summary['estimate']}" if "estimate" in summary else ""))
    swapped = out / "astronaut_as_grace.mp4"
    _run_preset("swap.json", [f"plate.path={shots['astronaut']}", f"swap.model={model}", f"out.path={swapped}"])
    say("converted the astronaut shot with graphs/swap.json")
    report = run_qc(swapped, shots["astronaut"])
    summary_line = ", ".join(f"{k} {v:.3f}" for k, v in report["summary"].items() if v is not None)
    say(f"QC: {summary_line}")
    print("\ndemo files:")
    for label, path in (("source shots", f"{shots['astronaut']}, {shots['grace']}"),
                        ("facesets", f"{facesets['astronaut']}, {facesets['grace']}"),
                        ("previews of faces and crops", f"{out / 'preview_faces.png'}, {out / 'preview_crops.png'}"),
                        ("model", model), ("loss plot", model / "loss.png"),
                        ("training previews", model / "previews"),
                        ("swapped shot (synthetic media)", swapped), ("its sidecar", sidecar_path(swapped)),
                        ("QC report", f"{qc_paths(swapped, None)} (+ .png)")):
        print(f"  {label + ':':<32} {path}")
    print(f"took {time.perf_counter() - started:.0f} s")
