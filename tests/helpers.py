"""Helpers the tests share: clips, graphs, reading media back with plain PyAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import torch

from swapgraph.demo.clips import animate_photo, write_clip  # noqa: F401 - re-exported
from swapgraph.nodes.photos import packaged_photo  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "data" / "clips"
GRAPHS = REPO / "graphs"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

def shared_clips() -> list[Path]:
    return sorted(SHARED_CLIPS.glob("*.mp4")) if SHARED_CLIPS.is_dir() else []

class CLIResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error: ")]

def swapgraph_subprocess(*args: str | Path, **kwargs) -> subprocess.Popen:
    """``swapgraph ARGS`` as its own process (for signals, plugins and exit codes end to end)."""
    return subprocess.Popen([sys.executable, "-m", "swapgraph.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

def on_a_terminal(args: Sequence[str | Path], sig: int | None = None, *, at: int = 0, when: str | None = None,
                  timeout: float = 300) -> tuple[int, str]:
    """Run ``swapgraph ARGS`` with stdout and stderr on a terminal (so it draws its progress
    bar) and return (exit code, what the terminal showed). With ``sig``, send it once the
    bar shows at least ``at`` frames done (or, with ``when``, once that regex shows): the
    signal lands where the bar says, mid-run, not after some sleep that a loaded machine
    can outlast."""
    import fcntl
    import pty
    import re
    import select
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "swapgraph.cli", *map(str, args)], stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    shown, sent = b"", False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 1)[0]:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        done = [int(n) for n in re.findall(rb"(\d+)/\d+ \[", shown)]
        ready = re.search(when.encode(), shown) if when else done and max(done) >= at
        if sig is not None and not sent and ready:
            proc.send_signal(sig)
            sent = True
    os.close(master)
    code = proc.wait(timeout=60)
    assert sent or sig is None, f"the run ended before it reached {when or at}: {shown.decode(errors='replace')[-500:]}"
    return code, shown.decode(errors="replace")


def interrupt_at_progress(args: Sequence[str | Path], sig: int, **when) -> tuple[int, str]:
    """``on_a_terminal`` with a signal: (exit code, what the terminal showed)."""
    return on_a_terminal(args, sig, **when)


def write_graph(path: Path, nodes: dict, settings: dict | None = None) -> Path:
    doc = {"version": 1, "name": path.stem, "nodes": nodes}
    if settings:
        doc["settings"] = settings
    path.write_text(json.dumps(doc, indent=2))
    return path

def decode_all(path: Path) -> tuple[np.ndarray, list[int]]:
    """Every frame of ``path`` as RGB uint8 (N, H, W, 3), and its pts, read with plain PyAV."""
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24"), f.pts) for f in c.decode(c.streams.video[0])]
    return np.stack([f for f, _ in frames]), [p for _, p in frames]

def _span(packets: list) -> float | None:
    """Seconds from the first packet's pts to the end of the last (pts + duration)."""
    timed = [p for p in packets if p.pts is not None and p.size]
    if not timed:
        return None
    tb = timed[0].time_base
    return float((max(p.pts + (p.duration or 0) for p in timed) - min(p.pts for p in timed)) * tb)


def stream_facts(path: Path) -> dict:
    """Frame count, pts, video and audio durations (from the packets), audio codecs, container tags."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        video = [p for p in c.demux(v) if p.size]
        facts = {"frames": len(video), "pts": sorted(p.pts for p in video), "time_base": v.time_base,
                 "video_duration": _span(video), "metadata": dict(c.metadata), "audio": []}
    with av.open(str(path)) as c:
        for a in c.streams.audio:
            packets = list(c.demux(a))
            facts["audio"].append({"codec": a.codec_context.name, "duration": _span(packets)})
    return facts


def write_photo_faceset(folder: Path, photo: str, faces: int = 40, seed: int = 0) -> Path:
    """A faceset without face detection (for machines without MediaPipe): the packaged photo
    resized to 256 px with small random shifts and light changes, a face oval as an ellipse."""
    import cv2

    from swapgraph.nodes.mask import regions

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    base = cv2.resize(packaged_photo(photo), (256, 256), interpolation=cv2.INTER_AREA)
    oval = regions()["face_oval"]
    angles = np.linspace(0, 2 * np.pi, len(oval), endpoint=False)
    landmarks = np.zeros((478, 3))
    landmarks[oval, 0] = 128 + 72 * np.sin(angles)
    landmarks[oval, 1] = 128 - 92 * np.cos(angles)
    with (folder / "faces.jsonl").open("w", encoding="utf-8") as f:
        for i in range(faces):
            dx, dy = rng.integers(-6, 7, 2)
            img = np.clip(np.roll(base, (dy, dx), (0, 1)).astype(int) + rng.integers(-20, 21), 0, 255).astype(np.uint8)
            name = f"{photo}_{i:04d}.png"
            cv2.imwrite(str(folder / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            f.write(json.dumps({"file": name, "source": photo, "frame": i, "track": 0, "bucket": "frontal",
                                "blur": 1.0, "pose": [0, 0, 0], "landmarks": landmarks.tolist(),
                                "frame_from_crop": [[1, 0, 0], [0, 1, 0]]}) + "\n")
    (folder / "faceset.json").write_text(json.dumps({"crop": 256, "coverage": 160, "faces": faces}))
    return folder


def fails_once_per_marker(marker: str) -> str:
    """A Dask job for the farm's retry tests: the first run (no marker file yet) fails on its
    worker, leaving that worker's address in the marker; later runs return their worker."""
    from distributed import get_worker

    from swapgraph.farm.cluster import ChunkFailed

    me = get_worker().address
    path = Path(marker)
    if not path.exists():
        path.write_text(me)
        raise ChunkFailed(me, "the first try fails", 1)
    return me


def fails_as_user_error(marker: str) -> str:
    """A Dask job that fails with a user error (exit code 2), counting its tries in ``marker``."""
    from distributed import get_worker

    from swapgraph.farm.cluster import ChunkFailed

    path = Path(marker)
    path.write_text(str(int(path.read_text() or 0) + 1) if path.exists() else "1")
    raise ChunkFailed(get_worker().address, "the disk is full", 2)


def find_face(image: np.ndarray):
    """The one face MediaPipe finds in ``image`` (RGB uint8 (H, W, 3)), in this process."""
    from swapgraph.nodes.face.detector import FaceAnalyzer

    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        return analyzer.analyze(image[None], 1, 24)[0][0]
    finally:
        analyzer.close()


def aligned_crops(image: np.ndarray, face, crop: int = 256, coverage: int = 160):
    """``image`` as a one-frame ``Frames`` and its face's aligned crop as ``FaceCrops``."""
    from swapgraph.nodes.align import crop_from_frame_matrices, cut_crops, invert_affine
    from swapgraph.runtime.images import rgb_to_tensor
    from swapgraph.nodes.ports import FaceCrops
    from swapgraph.runtime.ports import Frames, VideoInfo

    h, w = image.shape[:2]
    frames = Frames(rgb_to_tensor(image[None]), [0], [0], [1], VideoInfo(w, h, 25, 1))
    m = crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), crop, coverage)
    crops = cut_crops(frames.data, torch.tensor([0]), m, crop)
    return frames, FaceCrops(crops, invert_affine(m), [0], [face], coverage, 64, frames)


def packaged_facesets(root: Path, frames: int) -> dict[str, Path]:
    """Facesets extracted (graphs/extract.json, in this process) from ``frames``-frame shots
    animated from the packaged photos: ``grace`` (grace_hopper) and ``astro`` (astronaut)."""
    from swapgraph.cli.main import main

    out = {}
    for name, photo in (("grace", "grace_hopper"), ("astro", "astronaut")):
        clip = write_clip(root / f"{name}.mp4", animate_photo(packaged_photo(photo), frames, size=(384, 384)),
                          audio=False)
        assert main(["run", str(GRAPHS / "extract.json"), "--set", f"plate.path={clip}", "--set",
                     f"faceset.path={root / name}", "--set", "faces.workers=1", "--quiet"]) == 0
        out[name] = root / name
    return out


# Numbered clips for frame-exact checks: each frame carries its index in the file as 16
# black/white blocks along the top (read back by read_number, robust to lossy codecs) and
# as digits a person can read in the picture.
_BITS, _BLOCK = 16, 8


def numbered_frame(number: int, size: tuple[int, int] = (192, 108), tint: int = 0) -> np.ndarray:
    import cv2

    w, h = size
    img = np.full((h, w, 3), (40 + tint % 150, 90, 140), np.uint8)
    # a gradient, so a pixel comparison sees more than flat colour
    img[..., 1] = (np.arange(w)[None, :] * 255 // max(1, w - 1)).astype(np.uint8)
    for bit in range(_BITS):
        on = (number >> (_BITS - 1 - bit)) & 1
        img[0:_BLOCK, bit * _BLOCK:(bit + 1) * _BLOCK] = 255 if on else 0
    cv2.putText(img, str(number), (8, h - 16), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def read_number(image: np.ndarray) -> int:
    """The frame number drawn by numbered_frame into ``image`` (RGB uint8)."""
    value = 0
    for bit in range(_BITS):
        block = image[1:_BLOCK - 1, bit * _BLOCK + 1:(bit + 1) * _BLOCK - 1]
        value = (value << 1) | int(block.mean() > 127)
    return value


def write_numbered_clip(path: Path, frames: int, *, fps=25, timecode: str | None = None, codec: str = "ffv1",
                        size: tuple[int, int] = (192, 108), tint: int = 0) -> Path:
    """A clip whose frame i shows the number i; ``timecode``: the file's start timecode
    (a tmcd track in .mov/.mp4, a tag in .mkv). ffv1 in bgr0 is lossless from RGB."""
    from fractions import Fraction

    pictures = np.stack([numbered_frame(i, size, tint) for i in range(frames)])
    return write_clip(path, pictures, Fraction(fps).limit_denominator(1001), codec=codec, audio=False,
                      pix_fmt={"ffv1": "bgr0", "prores_ks": "yuv422p10le"}.get(codec, "yuv420p"), timecode=timecode)


# A head turned from a frontal photo, for orientation-bucket tests: a cylinder rotation and
# a perspective squeeze around the face box, fading back to the untouched photo outside it.
# MediaPipe reads about 36-39 degrees of yaw on the packaged photos (three_quarter).
def turn_head(img: np.ndarray, box, phi: float = 35.0, squeeze: float = 0.3, radius: float = 0.6) -> np.ndarray:
    import math

    import cv2

    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, fw, fh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    X, Y = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    R, p = radius * fw, math.radians(phi)
    u = np.clip((X - cx) / R, -1, 1)
    xc = cx + R * np.sin(np.clip(np.arcsin(u) - p, -math.pi / 2, math.pi / 2))
    band = np.clip(1 - (np.abs(X - cx) - R) / (0.5 * R), 0, 1)
    xc = np.clip(band * xc + (1 - band) * X, cx - 1.5 * fw, cx + 1.1 * fw)
    hh = fh / 2
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    dst = np.float32([[x0, cy - hh * (1 + squeeze)], [x1, cy - hh * (1 - squeeze)], [x1, cy + hh * (1 - squeeze)],
                      [x0, cy + hh * (1 + squeeze)]])
    hi = cv2.getPerspectiveTransform(dst, src).astype(np.float64)
    den = hi[2, 0] * xc + hi[2, 1] * Y + hi[2, 2]
    xs = (hi[0, 0] * xc + hi[0, 1] * Y + hi[0, 2]) / den
    ys = (hi[1, 0] * xc + hi[1, 1] * Y + hi[1, 2]) / den
    d = np.sqrt(((X - cx) / fw) ** 2 + ((Y - cy) / fh) ** 2)
    k = np.clip((1.8 - d) / 0.8, 0, 1)
    k = k * k * (3 - 2 * k)
    # replicate, not reflect: a reflected border puts a second face in the frame
    return cv2.remap(img, (k * xs + (1 - k) * X).astype(np.float32), (k * ys + (1 - k) * Y).astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def turning_clip(photo: str, frames: int = 60, size: int = 320, turned_first: bool = False) -> np.ndarray:
    """Frames of a packaged photo whose head turns to three-quarter halfway (or from it)."""
    from swapgraph.nodes.face.detector import FaceAnalyzer

    image = packaged_photo(photo)
    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        box = analyzer.analyze(image[None], 1, 24)[0][0].box
    finally:
        analyzer.close()
    still = animate_photo(image, frames, size=(size, size))
    turned = animate_photo(turn_head(image, box), frames, size=(size, size))
    first, second = (turned, still) if turned_first else (still, turned)
    return np.concatenate([first[:frames // 2], second[frames // 2:]])
