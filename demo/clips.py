"""Shots made from a still photo: a slow pan, zoom and change of light, with a tone.

The demo's shots and the tests' clips: no network, no footage needed.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


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


def write_clip(path: Path, frames: np.ndarray, fps: int | Fraction = 25, *, codec: str = "libx264",
               audio: bool = True, pix_fmt: str = "yuv420p", options: dict | None = None,
               timecode: str | None = None) -> Path:
    """Write RGB uint8 frames (N, H, W, 3) as a video, with a 440 Hz AAC tone when ``audio``;
    ``timecode``: the file's start timecode (a tmcd track in .mov/.mp4, a tag in .mkv).

    Source material for the demo and the tests, not swapgraph output.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = pix_fmt
        if timecode:
            vs.metadata["timecode"] = timecode
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
