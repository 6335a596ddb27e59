"""Stable track ids across frames, and which tracks a run keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import numpy as np

from ..ports import Face


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes, in [0, 1]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: tuple[float, float, float, float]
    last_seen: int


@dataclass
class FaceTracker:
    """Stable track ids across frames, through misses of up to ``max_missing`` frames.

    Detections are matched to live tracks by a cost mixing overlap and centre distance
    (in face sizes), solved as an assignment problem; a detection that matches no track
    starts a new one.
    """

    max_missing: int = 15
    max_distance: float = 0.7  # centre distance, in face sizes, beyond which faces never match
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0
    frames_seen: int = 0

    def update(self, faces: list[Face]) -> list[Face]:
        from scipy.optimize import linear_sum_assignment

        now = self.frames_seen
        self.frames_seen += 1
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.max_missing + 1]
        out: list[Face | None] = [None] * len(faces)
        if faces and self.tracks:
            cost = np.full((len(faces), len(self.tracks)), 1e6)
            for i, f in enumerate(faces):
                for j, t in enumerate(self.tracks):
                    size = max(f.box[2] - f.box[0], f.box[3] - f.box[1], 1.0)
                    dist = math.dist(_centre(f.box), _centre(t.box)) / size
                    if dist <= self.max_distance:
                        cost[i, j] = dist + (1 - box_iou(f.box, t.box))
            for i, j in zip(*linear_sum_assignment(cost)):
                if cost[i, j] < 1e6:
                    t = self.tracks[j]
                    t.box, t.last_seen = faces[i].box, now
                    out[i] = replace(faces[i], track=t.id)
        for i, f in enumerate(faces):
            if out[i] is None:
                self.tracks.append(_Track(self.next_id, f.box, now))
                out[i] = replace(f, track=self.next_id)
                self.next_id += 1
        return out  # type: ignore[return-value]


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def parse_keep(text: str) -> Literal["largest", "all"] | set[int]:
    """``largest``, ``all``, or comma-separated track ids such as ``0,2``."""
    t = text.strip()
    if t in ("largest", "all"):
        return t  # type: ignore[return-value]
    try:
        ids = {int(p) for p in t.split(",") if p.strip()}
    except ValueError:
        ids = set()
    if not ids:
        raise ValueError(f"keep {text!r}: expected 'largest', 'all' or track ids like '0,2'")
    return ids


def select_faces(faces: list[Face], keep: Literal["largest", "all"] | set[int]) -> list[Face]:
    if keep == "all":
        return faces
    if keep == "largest":
        return [max(faces, key=lambda f: f.height)] if faces else []
    return [f for f in faces if f.track in keep]
