"""Head pose against the canonical face, and orientation buckets with hysteresis."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..geometry import fit_similarity
from ..ports import Face
from .template import STABLE, template_array


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face's 478 landmarks against the frontal template.

    Fits the rotation taking the template's rigid points onto the face's (x, y, z) by
    least squares (Kabsch); yaw > 0 turns towards image right, pitch > 0 looks down,
    roll > 0 tilts clockwise. Convention: R = Rz(roll) @ Ry(-yaw) @ Rx(pitch).
    """
    src = torch.from_numpy(template_array(STABLE))[None]
    dst = torch.from_numpy(landmarks[list(STABLE)].astype(np.float64))
    r = fit_similarity(src, dst, scale=False)[0, :, :3].tolist()
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, -r[2][0]))))
    pitch = math.degrees(math.atan2(r[2][1], r[2][2]))
    roll = math.degrees(math.atan2(r[1][0], r[0][0]))
    return yaw, pitch, roll


@dataclass(frozen=True)
class BucketRule:
    """Orientation buckets by |yaw|, with hysteresis.

    ``frontal`` below ``frontal_max`` degrees, ``side`` above ``side_min``,
    ``three_quarter`` between. A face leaves the ``previous`` bucket only once |yaw| is
    ``margin`` degrees past the threshold, so a head near a threshold does not flip every
    frame. :class:`BucketTracker` takes ``previous`` from a window of recent frames.
    """

    frontal_max: float = 20.0
    side_min: float = 55.0
    margin: float = 5.0

    def raw(self, yaw: float) -> str:
        a = abs(yaw)
        return "frontal" if a < self.frontal_max else "side" if a >= self.side_min else "three_quarter"

    def classify(self, yaw: float, previous: str | None) -> str:
        new = self.raw(yaw)
        if previous is None or new == previous:
            return new
        a, m = abs(yaw), self.margin
        stays = {"frontal": a < self.frontal_max + m,
                 "three_quarter": self.frontal_max - m <= a < self.side_min + m,
                 "side": a >= self.side_min - m}
        return previous if stays[previous] else new


class BucketTracker:
    """Orientation buckets per track from a window of recent frames (finite memory).

    Per track it keeps the (frame number, |yaw|) of the track's faces in the last
    ``window`` frames, n - window + 1 .. n; tracks not seen in that window are dropped.
    The bucket at frame n is ``rule.classify(yaw_n, previous=rule.raw(mean |yaw|))``, the
    mean taken over those entries including frame n: a noisy head sitting on a threshold
    follows the slowly moving windowed mean, while a clear move past the margin changes
    bucket at once. The bucket at frame n depends only on that track's faces in frames
    n - window + 1 .. n, so a run started ``window - 1`` frames early gives the same buckets.
    """

    def __init__(self, rule: BucketRule, window: int = 15) -> None:
        if window < 1:
            raise ValueError(f"bucket window {window}: expected at least one frame")
        self.rule = rule
        self.window = window
        self.recent: dict[int, deque[tuple[int, float]]] = {}
        self.frame: int | None = None

    def __call__(self, face: Face, frame: int) -> Face:
        """``face`` of source frame ``frame`` with its pose and bucket (frames in order)."""
        first = frame - self.window + 1
        if frame != self.frame:
            self.frame = frame
            self.recent = {k: v for k, v in self.recent.items() if v[-1][0] >= first}
        pose = head_pose(face.landmarks)
        seen = self.recent.setdefault(face.track, deque())
        seen.append((frame, abs(pose[0])))
        while seen[0][0] < first:
            seen.popleft()
        mean = sum(a for _, a in seen) / len(seen)  # recomputed in order: no running sum drifts
        bucket = self.rule.classify(pose[0], previous=self.rule.raw(mean))
        return replace(face, pose=pose, bucket=bucket)
