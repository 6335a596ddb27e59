"""Faces: detection, 478-point landmarks, tracking, head pose, orientation, smoothing.

Face analysis runs on the CPU with MediaPipe 0.10.21 (BlazeFace full-range detection
and the refined face mesh, both shipped in its wheel), in a pool of worker processes
sized to the machine. Workers get small images: each frame downscaled for detection,
then a face-sized crop per face for the mesh; never the plate itself. Results come back
in frame order, and tracking, pose and orientation buckets are computed in order in the
node's own thread.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal, Sequence

import cv2
import numpy as np
from pydantic import Field, field_validator

from swapgraph.runtime.errors import NodeError
from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.runtime.node import Issue, Node, NodeSchema, Params, Port, RunContext
from swapgraph.runtime.ports import BUCKETS, Face, Faces, Frames

from . import mediapipe_faces
from .face_template import STABLE, template_array

MESH_SIZE = 256  # side of the face crop the mesh model gets (it runs at 192 internally)
CROP_EXPAND = 1.9  # crop side / detected box side: the whole head with margin

class FaceAnalyzer:
    """Detection then mesh, on ``workers`` processes (1: in this process), frame order kept.

    With a pool, frames are downscaled to ``detect_size`` before they travel (the
    detector works at 128-192 px anyway) and each face travels as a 256 px crop; in this
    process nothing is copied or resized for detection.
    """

    def __init__(self, workers: int, detector: str, min_confidence: float, detect_size: int) -> None:
        self.detect_size = detect_size
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.local: mediapipe_faces.MediaPipeFaces | None = None
        if workers > 1:
            # spawn, not fork: the run's threads (and torch's) must not be forked mid-flight
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=mediapipe_faces.init_worker,
                                            initargs=(detector, min_confidence))
        else:
            self.local = mediapipe_faces.MediaPipeFaces(detector, min_confidence)

    def _map(self, name: str, items: list) -> list:
        if not items:
            return []
        if self.pool is None:
            return [getattr(self.local, name)(x) for x in items]
        chunk = max(1, len(items) // (self.workers * 2))
        worker_fn = {"detect": mediapipe_faces.detect, "landmarks": mediapipe_faces.landmarks}[name]
        return list(self.pool.map(worker_fn, items, chunksize=chunk))

    def analyze(self, images: np.ndarray, max_faces: int, min_face_size: float) -> list[list[Face]]:
        """Faces (untracked) in each RGB uint8 image of (B, H, W, 3)."""
        _, h, w, _ = images.shape
        f = min(1.0, self.detect_size / max(h, w)) if self.pool is not None else 1.0
        if f < 0.9:
            interp = cv2.INTER_AREA if f < 0.5 else cv2.INTER_LINEAR
            small = [cv2.resize(im, (round(w * f), round(h * f)), interpolation=interp) for im in images]
        else:
            small = list(images)
        detections = self._map("detect", small)
        jobs: list[tuple[int, float, float, float, float]] = []
        crops = []
        for i, found in enumerate(detections):
            boxes = [(x * w, y * h, bw * w, bh * h, s) for x, y, bw, bh, s in found
                     if min(bw * w, bh * h) >= min_face_size]
            boxes.sort(key=lambda b: -b[2] * b[3])
            for x, y, bw, bh, score in boxes[:max_faces]:
                side = max(bw, bh) * CROP_EXPAND
                x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
                k = MESH_SIZE / side
                # crop pixels = k * (frame pixels - corner)
                crop_from_frame = np.array([[k, 0, -k * x0], [0, k, -k * y0]], np.float64)
                crops.append(cv2.warpAffine(images[i], crop_from_frame, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_CONSTANT))
                jobs.append((i, score, x0, y0, k))
        meshes = self._map("landmarks", crops)
        faces: list[list[Face]] = [[] for _ in range(len(images))]
        for (i, score, x0, y0, k), lm in zip(jobs, meshes):
            if lm is None:
                continue
            frame_lm = lm / k
            frame_lm[:, 0] += x0
            frame_lm[:, 1] += y0
            faces[i].append(Face(track=-1, box=landmark_box(frame_lm), score=score, landmarks=frame_lm))
        for row in faces:  # two detections of one face give one mesh twice: keep the first
            row[:] = [f for n, f in enumerate(row) if all(box_iou(f.box, g.box) < 0.6 for g in row[:n])]
        return faces

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.local is not None:
            self.local.close()
            self.local = None


# --- geometry --------------------------------------------------------------------------

def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around a face's landmarks, in the landmarks' pixels."""
    x0, y0 = landmarks[:, :2].min(0)
    x1, y1 = landmarks[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face's 478 landmarks against the frontal template.

    Fits the rotation taking the template's rigid points onto the face's (x, y, z) by
    least squares (Kabsch); yaw > 0 turns towards image right, pitch > 0 looks down,
    roll > 0 tilts clockwise. Convention: R = Rz(roll) @ Ry(-yaw) @ Rx(pitch).
    """
    src = template_array(STABLE)
    dst = landmarks[list(STABLE)].astype(np.float64)
    s, d = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(d.T @ s)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ fix @ vt
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
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


# --- tracking --------------------------------------------------------------------------

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


# --- smoothing -------------------------------------------------------------------------

class OneEuroFilter:
    """The One-Euro filter (Casiez et al. 2012) over arrays, one cutoff per point.

    A low-pass whose cutoff rises with speed: ``min_cutoff`` (Hz) smooths a still point
    hard, ``beta`` opens the filter as the point moves, so fast motion is not lagged.
    Speed is measured in ``scale`` units per second (a face size), so one setting suits
    faces of any size in the frame.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, scale: float) -> np.ndarray:
        """Filter points ``x`` (K, D) observed at time ``t`` seconds."""
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.astype(np.float64), np.zeros((x.shape[0], 2)), t
            return x
        dt = t - self.t
        # the velocity is low-passed before its magnitude is taken, so jitter (which
        # changes sign every frame) averages out and does not open the filter
        a_d = self._alpha(self.d_cutoff, dt)
        self.dx = a_d * (x[:, :2] - self.x[:, :2]) / dt + (1 - a_d) * self.dx
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(self.dx, axis=1) / max(scale, 1e-6)
        a = self._alpha(cutoff, dt)[:, None]
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.astype(x.dtype)


def face_scale(landmarks: np.ndarray) -> float:
    """A face's size in pixels: the distance between the outer eye corners."""
    return float(np.linalg.norm(landmarks[263, :2] - landmarks[33, :2]))


def one_euro_window(entries: Iterable[tuple[float, np.ndarray, float]], min_cutoff: float, beta: float,
                    d_cutoff: float) -> np.ndarray:
    """The output at the last of ``entries`` (time s, points, scale), oldest first, of a
    fresh :class:`OneEuroFilter` run over them (the first entry initialises it).

    It differs from the filter run over the whole history only by the weight the older
    history would still have, the product of (1 - alpha) over the entries; and it depends
    on these entries alone, never on where a run started.
    """
    filt = OneEuroFilter(min_cutoff, beta, d_cutoff)
    out = None
    for t, x, scale in entries:
        out = filt(x, t, scale)
    if out is None:
        raise ValueError("one_euro_window: no entries")
    return out


# --- nodes -----------------------------------------------------------------------------

class BucketParams(Params):
    """The orientation-bucket params DetectFaces and SmoothLandmarks share (SmoothLandmarks
    re-measures buckets on the smoothed landmarks)."""

    frontal_max_yaw: float = Field(20, gt=0, lt=90, description="|yaw| below this is frontal (degrees)")
    side_min_yaw: float = Field(55, gt=0, le=90, description="|yaw| from this is side (degrees)")
    bucket_margin: float = Field(5, ge=0, le=30, description="hysteresis: degrees past a threshold before a "
                                                             "face changes bucket")
    bucket_window: int = Field(15, ge=1, le=300, description="frames of a track's |yaw| averaged to decide the "
                                                             "bucket a face near a threshold keeps")

    def bucket_tracker(self, node_id: str) -> BucketTracker:
        """The windowed bucket rule these params describe; NodeError when the thresholds cross."""
        if self.side_min_yaw <= self.frontal_max_yaw:
            raise NodeError(f"node {node_id!r}: side_min_yaw ({self.side_min_yaw}) must exceed frontal_max_yaw "
                            f"({self.frontal_max_yaw}); fix the thresholds")
        return BucketTracker(BucketRule(self.frontal_max_yaw, self.side_min_yaw, self.bucket_margin),
                             self.bucket_window)


class DetectFacesParams(BucketParams):
    max_faces: int = Field(4, ge=1, le=32, description="faces looked for per frame")
    min_confidence: float = Field(0.5, gt=0, lt=1, description="detector score below which a face is ignored")
    min_face_size: float = Field(24, ge=8, description="smallest face side kept, in frame pixels")
    keep: str = Field("largest", description="faces to keep: 'largest', 'all', or track ids such as '0,2'")
    detector: Literal["auto", "full", "short"] = Field(
        "auto", description="BlazeFace model: full range (faces up to ~5 m away), short range (within ~2 m), or "
                            "auto: full range, then short range on frames where it finds nothing (close-ups)")
    detect_size: int = Field(480, ge=128, le=4096, description="frames are downscaled to this long side to find faces")
    workers: int = Field(0, ge=0, le=256, description="worker processes; 0 = the CPU cores less two (at least one), "
                                                      "1 = in this process")
    max_missing: int = Field(15, ge=0, le=1000, description="frames a track survives without its face")

    @field_validator("keep")
    @classmethod
    def _keep(cls, v: str) -> str:
        parse_keep(v)
        return v


class DetectFaces(Node):
    """Find faces and their 478 landmarks in every frame, track them, and measure head pose.

    MediaPipe BlazeFace finds faces on a downscaled copy of each frame; the refined face
    mesh then gives 478 landmarks from a face-sized crop, mapped back to frame pixels.
    Tracks keep stable ids through short misses and occlusions. Each face gets its head
    pose (yaw, pitch, roll) and an orientation bucket (frontal, three_quarter, side) with
    hysteresis: a face keeps the bucket of its track's mean |yaw| over the last
    bucket_window frames unless its own yaw is bucket_margin degrees past a threshold.
    Analysis runs in a pool of processes sized to the cores the run may use, in frame
    order. Frames with no face pass through and are counted.

    Pre-roll: max_missing + bucket_window frames (30 by default): max_missing + 1 so a
    track alive at the first output frame has had its chance to be seen, then
    bucket_window - 1 for the buckets. The pre-roll rebuilds the track partition (which
    faces belong together) exactly whenever no two faces compete for one track within it.
    The numeric track ids restart from 0 in every run: they number tracks from the first
    frame a run decodes, so chunks of a farm render number them differently; keep with
    track ids is therefore reported as a problem for a render in chunks.
    """

    schema = NodeSchema(inputs={"frames": Port(Frames, "frames to search")},
                        outputs={"faces": Port(Faces, "faces per frame, with landmarks, track, pose, bucket")},
                        params=DetectFacesParams, devices=("cpu",), category="face")

    params: DetectFacesParams

    @classmethod
    def preroll(cls, params: DetectFacesParams) -> int:  # type: ignore[override]
        return params.max_missing + 1 + (params.bucket_window - 1)

    def range_issues(self) -> list[Issue]:
        if isinstance(parse_keep(self.params.keep), set):
            return [Issue("param 'keep'",
                          f"keep {self.params.keep!r} selects track ids, and track ids are numbered from the first "
                          "frame a run decodes, so chunks of a farm render would keep different faces",
                          "use keep 'largest' or 'all', or render the shot in one run")]
        return []

    def open(self, ctx: RunContext) -> None:
        p = self.params
        self.buckets = p.bucket_tracker(self.id)
        # auto: the cores less two for the other stages (decode, encode, the GPU's feeder);
        # on a small machine that is one, in this process, which beats a pool there
        workers = p.workers or max(1, ctx.cpus - 2)
        self.analyzer = FaceAnalyzer(workers, p.detector, p.min_confidence, p.detect_size)
        self.tracker = FaceTracker(max_missing=p.max_missing)
        self.keep = parse_keep(p.keep)
        self.counts = {"frames": 0, "frames_with_face": 0, "frames_without_face": 0,
                       "frames_with_several_faces": 0, "faces": 0, "faces_at_frame_edge": 0}
        self.track_ids: set[int] = set()

    def process(self, frames: Frames) -> dict[str, Any]:
        p = self.params
        # with keep=largest only the largest detection needs its mesh
        max_faces = 1 if self.keep == "largest" else p.max_faces
        found = self.analyzer.analyze(frames_to_rgb8(frames.pixels), max_faces, p.min_face_size)
        kept = []
        for n, faces in zip(frames.index, found):
            faces = [self.buckets(f, n) for f in self.tracker.update(faces)]
            faces = select_faces(faces, self.keep)
            self._count(faces, frames.info.width, frames.info.height)
            kept.append(faces)
        return {"faces": Faces(kept, frames)}

    def _count(self, faces: list[Face], width: int, height: int) -> None:
        c = self.counts
        c["frames"] += 1
        c["frames_with_face"] += bool(faces)
        c["frames_without_face"] += not faces
        c["frames_with_several_faces"] += len(faces) > 1
        c["faces"] += len(faces)
        for f in faces:
            self.track_ids.add(f.track)
            x0, y0, x1, y1 = f.box
            c["faces_at_frame_edge"] += x0 < 0 or y0 < 0 or x1 > width or y1 > height

    def finish(self) -> None:
        self.analyzer.close()

    def abort(self) -> None:
        analyzer = getattr(self, "analyzer", None)
        if analyzer is not None:
            analyzer.close()

    def stats(self) -> dict[str, Any]:
        counts = getattr(self, "counts", None)
        return {**counts, "tracks": len(self.track_ids)} if counts else {}


class SmoothLandmarksParams(BucketParams):
    min_cutoff: float = Field(1.0, gt=0, le=30, description="One-Euro cutoff for a still face (Hz): lower smooths more")
    beta: float = Field(2.0, ge=0, le=100, description="how fast the cutoff opens with speed (per face size/s)")
    d_cutoff: float = Field(1.0, gt=0, le=30, description="cutoff of the speed estimate (Hz)")
    window: int = Field(30, ge=2, le=600, description="frames of history the filter runs over; raise it for frame "
                                                      "rates above 30")


class SmoothLandmarks(Node):
    """Remove landmark jitter per track with a One-Euro filter, without lagging fast motion.

    Each track's 478 landmarks are filtered in time (the frames' pts, so variable frame
    rates are handled); the filter's cutoff rises with the speed of each point, measured
    in face sizes per second. A track that was missing starts its filter afresh.

    The filter is windowed, so it has finite memory: the output at frame n is a fresh
    One-Euro filter run over the track's raw landmarks of its last ``window`` frames (at
    most; a gap starts a new run of frames). That equals the classic running filter to
    within the weight it would still give older frames: with the defaults, at most 0.15%
    at 25 fps and 0.4% at 30 fps (raise ``window`` for higher frame rates). Boxes, head
    pose and orientation buckets are recomputed from the smoothed landmarks, with
    DetectFaces' windowed bucket rule.

    Pre-roll: (window - 1) + (bucket_window - 1) frames, 43 by default: the output at frame
    n depends only on the input faces of frames n - pre-roll .. n.
    """

    schema = NodeSchema(inputs={"faces": Port(Faces)}, outputs={"faces": Port(Faces, "smoothed faces")},
                        params=SmoothLandmarksParams, devices=("cpu",), category="face")

    params: SmoothLandmarksParams

    @classmethod
    def preroll(cls, params: SmoothLandmarksParams) -> int:  # type: ignore[override]
        return (params.window - 1) + (params.bucket_window - 1)

    def open(self, ctx: RunContext) -> None:
        # track -> (frame, time s, raw landmarks, face scale) of its current run of consecutive frames
        self.history: dict[int, deque[tuple[int, float, np.ndarray, float]]] = {}
        self.buckets = self.params.bucket_tracker(self.id)

    def process(self, faces: Faces) -> dict[str, Any]:
        p = self.params
        info = faces.frames.info
        out = []
        for row_index, (n, row) in enumerate(zip(faces.frames.index, faces.faces)):
            t = float((faces.frames.pts[row_index] - info.start_pts) * info.time_base)
            # a track unseen last frame starts a new run anyway: forget it
            self.history = {k: h for k, h in self.history.items() if h[-1][0] >= n - 1}
            smoothed = []
            for face in row:
                history = self.history.get(face.track)
                if history is None or n - history[-1][0] > 1:
                    history = self.history[face.track] = deque(maxlen=p.window)
                history.append((n, t, face.landmarks, face_scale(face.landmarks)))
                lm = one_euro_window(((ht, x, s) for _, ht, x, s in history), p.min_cutoff, p.beta, p.d_cutoff)
                smoothed.append(self.buckets(replace(face, landmarks=lm, box=landmark_box(lm)), n))
            out.append(smoothed)
        return {"faces": Faces(out, faces.frames)}


def iter_faces(faces: Faces) -> Iterable[tuple[int, int, Face]]:
    """(row in the batch, source frame number, face) for every face of a batch."""
    for row, (n, row_faces) in enumerate(zip(faces.frames.index, faces.faces)):
        for f in row_faces:
            yield row, n, f


__all__ = ["BUCKETS", "BucketRule", "BucketTracker", "DetectFaces", "FaceAnalyzer", "FaceTracker", "OneEuroFilter",
           "SmoothLandmarks", "head_pose", "landmark_box", "one_euro_window"]
