"""The face nodes: DetectFaces (find, mesh, track, pose) and SmoothLandmarks."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from swapgraph.runtime.errors import NodeError
from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.runtime.node import Issue, Node, NodeSchema, Params, Port, RunContext
from swapgraph.runtime.ports import Frames

from ..ports import Face, Faces
from .detector import FaceAnalyzer, landmark_box
from .pose import BucketRule, BucketTracker
from .smoothing import face_scale, one_euro_window
from .tracking import FaceTracker, parse_keep, select_faces


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
