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


def run_demo(out: Path, quiet: bool = False) -> None:
    from .executor import evaluate_at
    from .images import write_png
    from .provenance import sidecar_path

    started = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shot = write_clip(out / "grace_shot.mp4", animate_photo(packaged_photo("grace_hopper"), 50))
    rescaled = out / "grace_rescaled.mp4"
    _, _, result = _run_preset("rescale.json", [f"plate.path={shot}", f"out.path={rescaled}"])
    faceset = out / "faceset_grace"
    extract, graph, _ = _run_preset("extract.json", [f"plate.path={shot}", f"faceset.path={faceset}"])
    faces_png, crops_png = out / "preview_faces.png", out / "preview_crops.png"
    write_png(faces_png, evaluate_at(graph, "faces", 10)["faces"].preview_image(10))
    write_png(crops_png, evaluate_at(graph, "crops", 10)["crops"].preview_image(10))
    from swapgraph.nodes.faceset import faceset_stats

    print(f"demo: {result.frames} frames through rescale.json and extract.json in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"  source shot (animated grace_hopper.jpg): {shot}")
    print(f"  rescaled video (tagged synthetic media): {rescaled}")
    print(f"  its sidecar (graph hash, params, times): {sidecar_path(rescaled)}")
    print(f"  faceset (crops + faces.jsonl):           {faceset}")
    print(f"  preview of faces on frame 10:            {faces_png}")
    print(f"  preview of aligned crops on frame 10:    {crops_png}")
    print("  " + faceset_stats(faceset).splitlines()[0])
    print("  preview any node yourself:\n"
          f"    swapgraph preview {extract} --set plate.path={shot} --node smooth --frame 20 -o smooth.png")
