"""``swapgraph demo``: the pipeline on inputs that installed packages ship.

No network and no ``../shared``: the shot is made by animating matplotlib's
``grace_hopper.jpg`` (pan, zoom and a change of light) with a tone for audio.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def preset_graph(name: str) -> Path:
    """Path of a preset graph shipped in ``graphs/`` (e.g. ``"rescale.json"``)."""
    import swapgraph.graphs

    for folder in swapgraph.graphs.__path__:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"preset graph {name!r} is not installed")


def packaged_photo(name: str = "grace_hopper") -> np.ndarray:
    """A real face photo that an installed package ships, as RGB uint8 (H, W, 3).

    ``grace_hopper`` comes with matplotlib, ``astronaut`` with scikit-image.
    """
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            data = np.frombuffer(f.read(), np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    raise ValueError(f"unknown packaged photo {name!r}; use grace_hopper or astronaut")


def animate_photo(photo: np.ndarray, frames: int, size: tuple[int, int] = (512, 512),
                  pan: float = 0.08, zoom: float = 0.15, light: float = 0.25) -> np.ndarray:
    """Frames (N, H, W, 3) uint8 of a slow camera move over ``photo``.

    The view pans by ``pan`` of the frame width, zooms in by ``zoom``, and the light
    dims and recovers by ``light``: the kinds of motion a real shot has.
    """
    h, w = size
    ph, pw = photo.shape[:2]
    base = max(h / ph, w / pw) * 1.1
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        t = i / max(1, frames - 1)
        s = base * (1 + zoom * t)
        dx = pan * w * math.sin(math.pi * t)
        m = np.array([[s, 0, w / 2 - s * pw / 2 + dx], [0, s, h / 2 - s * ph / 2]], np.float32)
        img = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        gain = 1 - light * math.sin(math.pi * t)
        out[i] = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return out


def write_clip(path: Path, frames: np.ndarray, fps: int = 25, *, codec: str = "libx264",
               audio: bool = True, pix_fmt: str = "yuv420p", options: dict | None = None) -> Path:
    """Write RGB uint8 frames (N, H, W, 3) as a video, with a 440 Hz AAC tone when ``audio``.

    Source material for the demo and the tests, not swapgraph output.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = pix_fmt
        vs.codec_context.options = options or ({"crf": "18", "preset": "veryfast"} if codec == "libx264" else {})
        a = None
        if audio:
            a = c.add_stream("aac", rate=48000)
            a.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
        if a is not None:
            total = int(48000 * len(frames) / fps)
            t = np.arange(total) / 48000.0
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = tone[start:start + 1024][None]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = start
                af.time_base = Fraction(1, 48000)
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def _run_preset(name: str, overrides: list[str]):
    from .executor import Executor
    from .graph import load_graph_document, validate_graph
    from .registry import default_registry

    path = preset_graph(name)
    graph = validate_graph(load_graph_document(path), default_registry(), path=path, overrides=overrides)
    return path, graph, Executor(graph).run()


def run_demo(out: Path, quiet: bool = False, steps: int = 150) -> None:
    """The whole mission on packaged photos: two shots, facesets, a bounded lite-64
    training, the swapped shot with its sidecar, the loss plot, previews and QC."""
    from swapgraph.nodes.faceset import faceset_stats
    from swapgraph.nodes.report import qc_paths, run_qc
    from swapgraph.nodes.training import TrainConfig, Trainer

    from .executor import evaluate_at
    from .images import write_png
    from .provenance import sidecar_path

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
        extract, graph, _ = _run_preset("extract.json", [f"plate.path={shot}", f"faceset.path={facesets[name]}"])
        say("extracted " + faceset_stats(facesets[name]).splitlines()[0])
    write_png(out / "preview_faces.png", evaluate_at(graph, "faces", 10)["faces"].preview_image(10))
    write_png(out / "preview_crops.png", evaluate_at(graph, "crops", 10)["crops"].preview_image(10))
    model = out / "model_astronaut_to_grace"
    say(f"training lite-64 for {steps} steps (A = astronaut, the plate; B = grace)")
    summary = Trainer(TrainConfig(a=facesets["astronaut"], b=facesets["grace"], out=model, preset="lite-64",
                                  batch_schedule=[(0, 16)], steps=steps, val_every=25, preview_every=50,
                                  checkpoint_every=100, quiet=True), log=say).run()
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
