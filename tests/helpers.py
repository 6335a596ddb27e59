"""Helpers the tests share: clips, graphs, reading media back with plain PyAV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import torch

from swapgraph.runtime.demo import animate_photo, packaged_photo, write_clip  # noqa: F401 - re-exported

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
    return subprocess.Popen([sys.executable, "-m", "swapgraph.runtime.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

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
